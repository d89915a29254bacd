"""LoRA training of the text backbone on a tiny MELD-format dataset (CSVs only, as on this machine): one
epoch, a merged bundle the services load without peft, and the small text weights the default bundle is
built from."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from shared.assets import minilm_dir
from shared.model.bundle import open_bundle, sha256_file
from tests.meld_factory import meld_row, write_meld_csv
from training import train
from training.default_bundle import build_default_bundle
from training.text_weights import load_text_weights, read_card

pytestmark = pytest.mark.integration

TRAIN = [
    ("I can't believe you did that to me!", "anger", "negative"),
    ("Oh wow, that is wonderful news.", "joy", "positive"),
    ("Okay.", "neutral", "neutral"),
    ("Wait, you're getting married?", "surprise", "positive"),
    ("I miss her so much.", "sadness", "negative"),
    ("Ew, that is disgusting.", "disgust", "negative"),
    ("There's someone in the house!", "fear", "negative"),
]
DEV = [
    ("This is the best day ever!", "joy", "positive"),
    ("Get out of my apartment.", "anger", "negative"),
    ("Sure, whatever.", "neutral", "neutral"),
]


@pytest.fixture(scope="module")
def meld_csvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("meld-csv")
    for split, rows in (("train", TRAIN), ("dev", DEV)):
        write_meld_csv(
            root / f"{split}_sent_emo.csv",
            [
                meld_row(i, text, emotion, sentiment, i // 2, i % 2)
                for i, (text, emotion, sentiment) in enumerate(rows)
            ],
        )
    return root


def test_lora_training_exports_a_merged_bundle_and_the_text_weights(meld_csvs: Path, tmp_path: Path) -> None:
    out, weights = tmp_path / "run", tmp_path / "weights" / "tiny.safetensors"
    argv = [
        "--data", meld_csvs, "--output-dir", out, "--modalities", "text", "--epochs", "1",
        "--lora-rank", "4", "--lr-lora", "1e-2", "--batch-size", "3", "--threads", "2", "--no-progress",
        "--text-weights", weights,
    ]  # fmt: skip
    summary = train.main(train.get_args_parser().parse_args([str(a) for a in argv]), command="make it so")

    assert summary.trained_modalities == ["text"] and summary.text_weights == str(weights)
    checkpoint = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    backbone_keys = [k for k in checkpoint["model"] if k.startswith("text.backbone.")]
    assert backbone_keys and all(".lora_" in k for k in backbone_keys)  # the frozen weights are not stored
    assert {g["name"] for g in checkpoint["optimizer"]["param_groups"]} == {"lora", "projections", "fusion"}

    bundle = open_bundle(str(out / "bundle"))
    assert (
        bundle.component("text").trained
        and "LoRA (rank 4, alpha 8) merged" in bundle.component("text").source
    )
    merged = AutoModel.from_pretrained(str(bundle.path("text/backbone")))
    pretrained = AutoModel.from_pretrained(str(minilm_dir()))
    assert set(merged.state_dict()) == set(pretrained.state_dict())
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, pretrained.state_dict()[k])]
    assert changed and all(k.startswith("encoder.layer.") and k.endswith(".weight") for k in changed)

    card = read_card(weights)
    assert card.command == "make it so" and card.seed == 0 and card.lora.rank == 4
    assert [(Path(f.path).name, f.sha256, f.rows) for f in card.data] == [
        ("train_sent_emo.csv", sha256_file(meld_csvs / "train_sent_emo.csv"), len(TRAIN)),
        ("dev_sent_emo.csv", sha256_file(meld_csvs / "dev_sent_emo.csv"), len(DEV)),
    ]
    assert card.dev.n == len(DEV) and card.temperatures == summary.temperatures
    stored = load_text_weights(weights)
    assert len(stored.lora_state) == 6 * 6 * 2  # six layers, six adapted linears, A and B
    assert all(v.dtype == torch.float16 for v in stored.lora_state.values())
    assert stored.fusion["emotion_temperature"].dtype == torch.float32

    default = build_default_bundle(tmp_path / "default", weights=weights)
    assert default.components["text"].trained and default.components["fusion"].trained
    assert not default.components["video"].trained and default.components["audio"].trained  # the voice


def test_lora_settings_that_cannot_work_are_refused(meld_csvs: Path, tmp_path: Path) -> None:
    base = ["--data", str(meld_csvs), "--output-dir", str(tmp_path), "--modalities", "text"]
    for extra, message in (
        (["--lora-rank", "4", "--freeze-text"], "exclude each other"),
        (["--text-weights", str(tmp_path / "w.safetensors")], "give --lora-rank"),
        (["--lora-rank", "4", "--lora-dropout", "1.5"], "dropout"),
    ):
        with pytest.raises(SystemExit, match=message):
            train.main(train.get_args_parser().parse_args(base + extra))
