"""The ablation's pure parts: transcripts from MELD dialogues, and the table's inference budget."""

from pathlib import Path

from tests.meld_factory import meld_row, write_meld_csv
from training.data import read_meld_csv
from training.text_ablation import AblationRow, dialogues, machine_description, markdown


def test_each_dialogue_becomes_one_transcript_in_utterance_order(tmp_path: Path) -> None:
    rows = [
        meld_row(0, "second", "joy", "positive", dialogue=4, utterance=1),
        meld_row(1, "other", "joy", "positive", dialogue=9, utterance=0),
        meld_row(2, "first", "joy", "positive", dialogue=4, utterance=0),
    ]
    utterances = read_meld_csv(write_meld_csv(tmp_path / "dev_sent_emo.csv", rows))
    assert dialogues(utterances) == [["first", "second"], ["other"]]


def row(ms: float) -> AblationRow:
    return AblationRow(
        weights="w.safetensors",
        backbone="all-MiniLM-L6-v2",
        context="each utterance read alone",
        emotion_weighted_f1=0.6,
        sentiment_weighted_f1=0.7,
        emotion_ece=0.04,
        sentiment_ece=0.03,
        train_minutes=12.0,
        epochs=7,
        train_threads=2,
        ms_per_utterance=ms,
        ms_per_utterance_spread=(ms, ms),
        threads=2,
    )


def test_rows_over_the_inference_budget_say_so() -> None:
    table = markdown([row(12.5), row(55.0)])
    assert "| 12.5 |" in table and "| 55.0 (over 40) |" in table


def test_a_dialogue_row_counts_the_grus_epochs_after_the_encoders() -> None:
    table = markdown([row(17.5).model_copy(update={"dialogue_epochs": 15})])
    assert "| 12 min, 7 epochs, 2 threads, then the GRU 15 epochs |" in table
    assert "then the GRU" not in markdown([row(17.5)])


def test_untrained_rows_show_their_time_and_no_figures() -> None:
    untrained = row(30.0).model_copy(
        update={
            "weights": "(not trained)",
            "emotion_weighted_f1": None,
            "train_minutes": None,
            "epochs": None,
        }
    )
    line = markdown([untrained]).splitlines()[-1]
    assert line.startswith("| (not trained) |") and "| - |" in line and line.endswith("| 30.0 |")


def test_the_machine_the_times_were_read_on_is_named(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_bf16 amx_tile\n"
    )
    described = machine_description(cpuinfo)
    assert described.startswith("Intel(R) Xeon(R) Platinum 8480+, ")
    assert described.endswith("avx2 avx512f avx512_vnni amx_bf16")
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu sse\n")
    assert machine_description(cpuinfo).endswith("no AVX2")
    assert machine_description(tmp_path / "absent") == "unknown CPU"
