"""The context window each utterance is read in: order, edges, separators, budget, and the MELD grouping."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from shared.assets import minilm_dir
from shared.model.config import ModelConfig
from shared.model.context import ContextWindow, WindowInput, window_inputs
from tests.meld_factory import meld_row, write_meld_csv
from training.data import meld_window_inputs, read_meld_csv

CLS, SEP = 1, 2


class WordTokenizer:
    """One id per word (`w<N>` is N + 100), so that expected windows can be written out by hand."""

    cls_token_id = CLS
    sep_token_id = SEP

    def __call__(self, text: list[str], *, add_special_tokens: bool) -> dict[str, list[list[int]]]:
        assert not add_special_tokens
        return {"input_ids": [[100 + int(word[1:]) for word in t.split()] for t in text]}


def words(*numbers: int) -> list[int]:
    return [100 + n for n in numbers]


def own_tokens(item: WindowInput) -> list[int]:
    return [t for t, m in zip(item.input_ids, item.pool_mask, strict=True) if m]


TEXTS = ["w1 w2", "w3", "w4 w5 w6", "w7"]


def test_alone_is_the_plain_utterance_pooled_over_every_token() -> None:
    inputs = window_inputs(WordTokenizer(), TEXTS, ContextWindow())
    assert inputs[2] == WindowInput(input_ids=[CLS, *words(4, 5, 6), SEP], pool_mask=[1] * 5)


def test_a_window_reads_the_neighbours_in_spoken_order_and_pools_only_the_utterance() -> None:
    inputs = window_inputs(WordTokenizer(), TEXTS, ContextWindow(before=2, after=1))
    assert inputs[2].input_ids == [
        CLS,
        *words(1, 2),
        SEP,
        *words(3),
        SEP,
        *words(4, 5, 6),
        SEP,
        *words(7),
        SEP,
    ]
    assert own_tokens(inputs[2]) == words(4, 5, 6)
    assert inputs[2].pool_mask == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]


def test_the_edges_of_a_conversation_have_fewer_neighbours() -> None:
    first, *_, last = window_inputs(WordTokenizer(), TEXTS, ContextWindow(before=2, after=1))
    assert first.input_ids == [CLS, *words(1, 2), SEP, *words(3), SEP]
    assert own_tokens(first) == words(1, 2)
    assert last.input_ids == [CLS, *words(3), SEP, *words(4, 5, 6), SEP, *words(7), SEP]
    assert own_tokens(last) == words(7)
    assert window_inputs(WordTokenizer(), [], ContextWindow(before=2, after=1)) == []
    (single,) = window_inputs(WordTokenizer(), ["w9"], ContextWindow(before=2, after=1))
    assert single.input_ids == [CLS, *words(9), SEP]


def test_silent_segments_are_no_ones_neighbour_and_pool_nothing() -> None:
    texts = ["w1", "", "w2", "  ", "w3"]
    inputs = window_inputs(WordTokenizer(), texts, ContextWindow(before=1, after=1))
    assert inputs[2].input_ids == [CLS, *words(1), SEP, *words(2), SEP, *words(3), SEP]
    assert inputs[1].input_ids == [CLS, SEP] and not any(inputs[1].pool_mask)


def test_a_short_budget_keeps_the_nearest_words_of_each_side() -> None:
    texts = ["w1 w2 w3 w4", "w5 w6 w7 w8", "w9", "w10 w11 w12 w13", "w14"]
    window = ContextWindow(before=2, after=2, utterance_tokens=3, window_tokens=10)
    item = window_inputs(WordTokenizer(), texts, window)[2]
    assert len(item.input_ids) <= 10
    # 10 - (w9 + CLS + SEP) = 7: the end of the one before (4 + SEP), then the start of the next (1 + SEP)
    assert item.input_ids == [CLS, *words(5, 6, 7, 8), SEP, *words(9), SEP, *words(10), SEP]
    assert own_tokens(item) == words(9)


def test_the_utterance_itself_is_cut_to_its_own_limit() -> None:
    long = " ".join(f"w{n}" for n in range(50))
    window = ContextWindow(before=1, after=1, utterance_tokens=10, window_tokens=40)
    item = window_inputs(WordTokenizer(), ["w1", long, "w2"], window)[1]
    assert own_tokens(item) == words(*range(8))
    assert item.input_ids[0] == CLS and item.input_ids.count(SEP) == 3


@pytest.mark.parametrize(("before", "after", "utterance", "total"), [(-1, 0, 96, 192), (0, 0, 96, 64)])
def test_impossible_windows_are_refused(before: int, after: int, utterance: int, total: int) -> None:
    with pytest.raises(ValueError):
        ContextWindow(before=before, after=after, utterance_tokens=utterance, window_tokens=total)


def test_meld_dialogues_are_read_in_utterance_order_and_never_across_dialogues(tmp_path: Path) -> None:
    # Rows out of order, two dialogues interleaved: the windows follow Dialogue_ID / Utterance_ID.
    csv_path = write_meld_csv(
        tmp_path / "train_sent_emo.csv",
        [
            meld_row(1, "w2", "neutral", "neutral", dialogue=0, utterance=1),
            meld_row(2, "w9", "neutral", "neutral", dialogue=1, utterance=0),
            meld_row(3, "w1", "neutral", "neutral", dialogue=0, utterance=0),
            meld_row(4, "w3", "neutral", "neutral", dialogue=0, utterance=2),
        ],
    )
    utterances = read_meld_csv(csv_path)
    inputs = meld_window_inputs(utterances, WordTokenizer(), ContextWindow(before=1, after=1))
    assert inputs[0].input_ids == [CLS, *words(1), SEP, *words(2), SEP, *words(3), SEP]
    assert inputs[1].input_ids == [CLS, *words(9), SEP]
    assert inputs[2].input_ids == [CLS, *words(1), SEP, *words(2), SEP]


def test_the_real_tokenizer_builds_the_windows_the_featurizer_and_training_share(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    lines = ["Oh really?", "Yeah, I got the job!", "That is amazing, congratulations."]
    csv_path = write_meld_csv(
        tmp_path / "dev_sent_emo.csv",
        [meld_row(i, t, "joy", "positive", dialogue=3, utterance=i) for i, t in enumerate(lines)],
    )
    config = ModelConfig(text_context_before=2, text_context_after=1)
    from_meld = meld_window_inputs(read_meld_csv(csv_path), tokenizer, config.context_window)
    from_transcript = window_inputs(tokenizer, lines, config.context_window)
    assert from_meld == from_transcript
    middle = from_transcript[1]
    assert tokenizer.decode(own_tokens(middle)) == "yeah, i got the job!"
    assert tokenizer.decode(middle.input_ids) == (
        "[CLS] oh really? [SEP] yeah, i got the job! [SEP] that is amazing, congratulations. [SEP]"
    )
