"""MELD CSV reading (encodings, layout, bad input) and the pure parts of training (weights, dropout)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from shared.model.audio import AudioEncoder
from shared.model.config import ModelConfig
from shared.model.preprocess import LogMel, min_mel_frames
from tests.meld_factory import meld_row, write_meld_csv
from training.data import (
    Collate,
    MeldDataset,
    MeldFormatError,
    Sample,
    fix_mojibake,
    read_meld_csv,
    split_clips_dir,
)
from training.losses import ModalityDropout, class_weights

MELD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "meld"


@pytest.mark.parametrize(
    ("stored", "meant"),
    [
        ("He\u0092s lost it.", "He’s lost it."),  # cp1252 punctuation kept as a C1 control
        ("\u0091Hi\u0092 \u0097 wait\u0085", "‘Hi’ — wait…"),
        ("Itâ€™s okayâ€¦", "It’s okay…"),  # UTF-8 read as cp1252
        ("Itâ\u0080\u0099s", "It’s"),  # UTF-8 read as Latin-1
        ("naÃ¯ve", "naïve"),
        ("café, he’s — “fine”", "café, he’s — “fine”"),  # already right: untouched
        ("plain ASCII, 100%", "plain ASCII, 100%"),
    ],
)
def test_fix_mojibake(stored: str, meant: str) -> None:
    assert fix_mojibake(stored) == meant


def test_reads_meld_columns_crlf_bom_and_mojibake(tmp_path: Path) -> None:
    path = write_meld_csv(
        tmp_path / "train_sent_emo.csv",
        [
            meld_row(0, "Oh my God, he\u0092s lost it.", "sadness", "negative", 0, 0),
            meld_row(1, "What?\nReally?", "surprise", "negative", 0, 1),  # a quoted line break
            meld_row(2, " Yeah, sure. ", "Neutral", "neutral", 3, 7),
        ],
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a BOM, as Excel writes
    assert b"\r\n" in path.read_bytes()
    utterances = read_meld_csv(path)
    assert [u.text for u in utterances] == ["Oh my God, he’s lost it.", "What?\nReally?", "Yeah, sure."]
    assert [EMOTIONS[u.emotion] for u in utterances] == ["sadness", "surprise", "neutral"]
    assert [SENTIMENTS[u.sentiment] for u in utterances] == ["negative", "negative", "neutral"]
    assert utterances[2].clip_name == "dia3_utt7.mp4"


def test_the_real_meld_csvs_read_whole() -> None:
    for split, count in (("train", 9989), ("dev", 1109)):
        utterances = read_meld_csv(MELD / f"{split}_sent_emo.csv")
        assert len(utterances) == count
        assert not any("\u0080" <= ch <= "\u009f" or ch == "â" for u in utterances for ch in u.text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Emotion": "happy"}, "'happy' is not one of anger"),
        ({"Sentiment": "mixed"}, "'mixed' is not one of negative"),
        ({"Dialogue_ID": "x"}, "Dialogue_ID 'x' is not an integer"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path: Path, change: dict[str, str], message: str) -> None:
    rows = [
        meld_row(0, "fine", "joy", "positive", 0, 0),
        meld_row(1, "bad", "joy", "positive", 0, 1) | change,
    ]
    path = write_meld_csv(tmp_path / "dev_sent_emo.csv", rows)
    with pytest.raises(MeldFormatError, match=f"dev_sent_emo.csv:3: {message}"):
        read_meld_csv(path)


def test_a_csv_without_meld_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,text\r\n1,hello\r\n", encoding="utf-8")
    with pytest.raises(MeldFormatError, match="lacks the columns Utterance, Speaker, Emotion"):
        read_meld_csv(path)


def test_meld_raw_clip_folders_are_found(tmp_path: Path) -> None:
    (tmp_path / "dev_splits_complete").mkdir()
    (tmp_path / "output_repeated_splits_test").mkdir()
    assert split_clips_dir(tmp_path, "train") is None
    assert split_clips_dir(tmp_path, "dev") == tmp_path / "dev_splits_complete"
    assert split_clips_dir(tmp_path, "test") == tmp_path / "output_repeated_splits_test"


def test_text_only_samples_mask_video_and_audio(tmp_path: Path) -> None:
    path = write_meld_csv(
        tmp_path / "train_sent_emo.csv",
        [meld_row(0, "Hello there", "joy", "positive", 0, 0), meld_row(1, "", "neutral", "neutral", 0, 1)],
    )
    config = ModelConfig()
    features = torch.randn(2, config.text_hidden)
    dataset = MeldDataset(
        read_meld_csv(path), config=config, modalities=frozenset(Modality), text_features=features,
        clips_dir=tmp_path / "train_splits",  # does not exist: every clip is missing
    )  # fmt: skip
    batch = Collate(config)([dataset[0], dataset[1]])
    assert batch.present.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # an empty utterance has no text
    assert batch.video is None and batch.audio is None
    assert batch.text_features is not None and torch.equal(batch.text_features, features)
    assert batch.emotion.tolist() == [EMOTIONS.index("joy"), EMOTIONS.index("neutral")]


def test_class_weights_are_inverse_frequency_with_unit_mean() -> None:
    labels = [0] * 6 + [1] * 3 + [2] * 1
    full = class_weights(labels, 3, power=1.0)
    assert full.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])  # N / (K · count)
    for power in (1.0, 0.5, 0.0):
        weights = class_weights(labels, 3, power)
        assert float((weights * torch.tensor([6.0, 3.0, 1.0])).sum()) == pytest.approx(10.0)
    assert class_weights(labels, 3, 0.0).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert class_weights(labels, 3, 0.5)[2] / class_weights(labels, 3, 0.5)[0] == pytest.approx(6**0.5)


def test_modality_dropout_never_adds_a_modality_and_keeps_one() -> None:
    torch.manual_seed(0)
    present = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]).repeat(
        500, 1
    )
    kept = ModalityDropout(p=0.5, blank_rate=0.0)(present)
    assert bool((kept <= present).all())
    has_any = present.sum(dim=1) > 0
    assert bool((kept[has_any].sum(dim=1) >= 1).all())
    assert bool((kept[1::4] == present[1::4]).all())  # a lone modality is never hidden
    full_rows = kept[0::4]
    assert 0.3 < float(full_rows.mean()) < 0.7
    blanked = ModalityDropout(p=0.0, blank_rate=0.1)(present)
    assert 0.05 < float((blanked.sum(dim=1) == 0)[has_any].float().mean()) < 0.15


def test_collate_pads_short_audio_to_what_the_audio_cnn_can_pool() -> None:
    config = ModelConfig()
    log_mel = LogMel(config)
    tiny = log_mel(np.zeros(200, dtype=np.float32))  # shorter than one FFT window: 3 frames
    assert tiny.shape[-1] < min_mel_frames(config)
    samples = [
        Sample(input_ids=torch.tensor([101, 7592, 102]), pool_mask=torch.tensor([0, 1, 0]),
               text_features=None, clip=None, mel=tiny,
               present=torch.tensor([1.0, 0.0, 1.0]), emotion=0, sentiment=0),
        Sample(input_ids=torch.tensor([101, 102]), pool_mask=torch.tensor([1, 1]),
               text_features=None, clip=None, mel=None,
               present=torch.tensor([1.0, 0.0, 0.0]), emotion=4, sentiment=1),
    ]  # fmt: skip
    batch = Collate(config, pad_token_id=0)(samples)
    assert batch.audio is not None and batch.audio.shape == (2, 1, config.n_mels, min_mel_frames(config))
    assert AudioEncoder(config).eval()(batch.audio).shape == (2, config.embed_dim)
    assert batch.input_ids is not None and batch.attention_mask is not None
    assert batch.input_ids.tolist() == [[101, 7592, 102], [101, 102, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch.pool_mask is not None and batch.pool_mask.tolist() == [[0, 1, 0], [1, 1, 0]]
