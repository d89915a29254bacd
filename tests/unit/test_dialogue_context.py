"""The dialogue model (shared.model.dialogue): a GRU over a conversation's utterance embeddings, and the
conversations training and the services hand it."""

from pathlib import Path

import pytest
import torch
from torch import nn

from shared.model.config import ModelConfig
from shared.model.dialogue import (
    SPEAKER_FEATURES,
    SPEAKER_SLOTS,
    DialogueContext,
    batch_conversations,
    speaker_features,
    spoken_conversation,
)
from shared.model.text import TextProjection
from tests.meld_factory import meld_row, write_meld_csv
from training.data import dialogue_batches, dialogue_rows, read_meld_csv

DIM = 8


def _reading(seed: int = 0) -> DialogueContext:
    """A dialogue model whose output layer is not zero (as if trained), in eval mode."""
    torch.manual_seed(seed)
    model = DialogueContext(DIM, 4, dropout=0.0)
    nn.init.normal_(model.out.weight, std=0.5)
    return model.eval()


def _embeddings(n: int, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(n, DIM)  # non-negative, as the projection's ReLU gives them


def test_an_untrained_dialogue_model_passes_the_embeddings_through() -> None:
    embeddings = _embeddings(5)
    model = DialogueContext(DIM, 4).eval()
    torch.testing.assert_close(model.conversations(embeddings, [[0, 1, 2, 3, 4]]), embeddings)


def test_every_utterance_reads_the_whole_conversation_in_both_directions() -> None:
    model, embeddings = _reading(), _embeddings(5)
    with torch.no_grad():
        base = model.conversations(embeddings, [[0, 1, 2, 3, 4]])
        first_changed, last_changed = embeddings.clone(), embeddings.clone()
        first_changed[0] += 1.0
        last_changed[4] += 1.0
        after_first = model.conversations(first_changed, [[0, 1, 2, 3, 4]])
        after_last = model.conversations(last_changed, [[0, 1, 2, 3, 4]])
    assert (after_first[4] - base[4]).abs().max() > 1e-4  # the start reaches the end
    assert (after_last[0] - base[0]).abs().max() > 1e-4  # and the end the start
    with torch.no_grad():
        reversed_order = model.conversations(embeddings, [[4, 3, 2, 1, 0]])
    assert (reversed_order - base).abs().max() > 1e-4  # the order is read


def test_conversations_do_not_leak_into_each_other_or_into_rows_outside_them() -> None:
    model, embeddings = _reading(), _embeddings(7)
    with torch.no_grad():
        together = model.conversations(embeddings, [[0, 1, 2], [4, 5, 6]])
        first = model.conversations(embeddings, [[0, 1, 2]])
        second = model.conversations(embeddings, [[4, 5, 6]])
    torch.testing.assert_close(together[:3], first[:3])
    torch.testing.assert_close(together[4:], second[4:])
    torch.testing.assert_close(together[3], embeddings[3])  # silent: nobody's neighbour, left as it was
    torch.testing.assert_close(model.conversations(embeddings, []), embeddings)


def test_padding_rows_come_back_as_they_went_in() -> None:
    model = _reading()
    padded = torch.rand(2, 4, DIM)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    with torch.no_grad():
        out = model(padded, mask)
    torch.testing.assert_close(out[1, 2:], padded[1, 2:])
    with torch.no_grad():
        alone = model(padded[1:, :2], mask[1:, :2])
    torch.testing.assert_close(out[1, :2], alone[0])  # padding changes nothing of the real rows


def test_the_projection_carries_a_dialogue_model_only_when_the_config_asks() -> None:
    assert TextProjection(ModelConfig()).dialogue is None
    with_dialogue = TextProjection(ModelConfig(text_dialogue_hidden=12))
    assert with_dialogue.dialogue is not None and with_dialogue.dialogue.rnn.hidden_size == 12
    assert any(k.startswith("dialogue.rnn.") for k in with_dialogue.state_dict())


def test_a_file_is_one_conversation_of_its_spoken_rows() -> None:
    assert spoken_conversation([True, False, True, True]) == [[0, 2, 3]]
    assert spoken_conversation([False, False]) == [[]]


def test_a_batch_splits_into_conversations_by_consecutive_dialogue_ids() -> None:
    ids = [7, 7, 7, 3, 3, 9]
    spoken = [True, False, True, True, True, False]
    assert batch_conversations(ids, spoken) == [[0, 2], [3, 4]]
    assert batch_conversations([], []) == []
    with pytest.raises(ValueError):
        batch_conversations([1, 2], [True])


def test_dialogue_batches_hold_whole_dialogues_in_utterance_order(tmp_path: Path) -> None:
    # Rows out of order, as a MELD-format CSV may hold them: dialogue 1's utterances reversed, 0 split.
    rows = [(1, 2), (0, 0), (1, 1), (2, 0), (1, 0), (0, 1), (3, 0), (3, 1), (3, 2), (3, 3)]
    path = tmp_path / "x_sent_emo.csv"
    write_meld_csv(path, [meld_row(i, f"line {i}", "joy", "positive", d, u) for i, (d, u) in enumerate(rows)])
    utterances = read_meld_csv(path)
    assert [
        [(utterances[i].dialogue_id, utterances[i].utterance_id) for i in d]
        for d in dialogue_rows(utterances)
    ] == [
        [(1, 0), (1, 1), (1, 2)],
        [(0, 0), (0, 1)],
        [(2, 0)],
        [(3, 0), (3, 1), (3, 2), (3, 3)],
    ]
    batches = dialogue_batches(utterances, max_rows=5)
    assert [[(utterances[i].dialogue_id, utterances[i].utterance_id) for i in b] for b in batches] == [
        [(1, 0), (1, 1), (1, 2), (0, 0), (0, 1)],
        [(2, 0), (3, 0), (3, 1), (3, 2), (3, 3)],
    ]
    # A dialogue longer than a batch is a batch of its own, never cut.
    assert [len(b) for b in dialogue_batches(utterances, max_rows=2)] == [3, 2, 1, 4]
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))


def test_speaker_features_say_who_by_first_appearance_and_whether_the_turn_changed() -> None:
    features = speaker_features(["S2", "S2", "S1", None, "S2", "S3", "S4", "S5"])
    slots = features[:, :SPEAKER_SLOTS]
    assert slots.argmax(dim=1).tolist() == [0, 0, 1, 0, 0, 2, 3, 3]  # S5 shares the last slot with S4
    assert features[3].sum() == 0  # unknown: nothing said
    assert features[:, SPEAKER_SLOTS].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]  # the same person again
    assert features[:, SPEAKER_SLOTS + 1].tolist() == [1, 1, 1, 0, 1, 1, 1, 1]  # known


def test_a_model_that_reads_speakers_reads_a_reply_apart_from_going_on_and_unknown_as_zeros() -> None:
    torch.manual_seed(0)
    model = DialogueContext(DIM, 4, dropout=0.0, speaker_features=SPEAKER_FEATURES)
    nn.init.normal_(model.out.weight, std=0.5)
    model.eval()
    embeddings = _embeddings(4)
    with torch.no_grad():
        one = model.conversations(embeddings, [[0, 1, 2, 3]], ["S1", "S1", "S1", "S1"])
        two = model.conversations(embeddings, [[0, 1, 2, 3]], ["S1", "S2", "S1", "S2"])
        unknown = model.conversations(embeddings, [[0, 1, 2, 3]])
        none_known = model.conversations(embeddings, [[0, 1, 2, 3]], [None] * 4)
    assert (one - two).abs().max() > 1e-4
    torch.testing.assert_close(unknown, none_known)
    reading = TextProjection(ModelConfig(text_dialogue_hidden=12, text_dialogue_speakers=SPEAKER_FEATURES))
    assert reading.dialogue is not None and reading.dialogue.rnn.input_size == 128 + SPEAKER_FEATURES
