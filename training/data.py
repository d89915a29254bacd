"""MELD in its MELD.Raw layout: `<split>_sent_emo.csv` beside a folder of `dia{D}_utt{U}.mp4` clips.

    DIR/train_sent_emo.csv   DIR/train_splits/dia0_utt0.mp4 ...
    DIR/dev_sent_emo.csv     DIR/dev_splits_complete/dia0_utt0.mp4 ...

A split without its clip folder (only the CSVs exist here), a missing or unreadable clip, a clip with no
audio track or with no face in it gives a sample whose modality is masked: its presence flag is 0, so a
text-only run is the same code with every video and audio flag off.
"""

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset

from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from shared.media.container import MediaError
from shared.media.decode import load_audio, probe
from shared.media.frames import sample_span_frames
from shared.model.config import ModelConfig
from shared.model.context import ContextWindow, WindowInput, WordPieceTokenizer, window_inputs
from shared.model.face_detection import detect_faces
from shared.model.preprocess import LogMel, audio_segment, clip_tensor, min_mel_frames, pad_batch
from shared.model.text import pad_windows

logger = logging.getLogger(__name__)

Split = Literal["train", "dev", "test"]
# MELD.Raw's tarballs unpack to these folder names; the plain `<split>_splits` is accepted too.
CLIP_DIRS: Final[dict[Split, tuple[str, ...]]] = {
    "train": ("train_splits",),
    "dev": ("dev_splits_complete", "dev_splits"),
    "test": ("output_repeated_splits_test", "test_splits"),
}
REQUIRED_COLUMNS: Final = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
MODALITY_COLUMN: Final = {Modality.TEXT: 0, Modality.VIDEO: 1, Modality.AUDIO: 2}
MELD_SOURCE: Final = "MELD (declare-lab/MELD, GPL-3.0; utterances from the TV show Friends)"

# Characters that stand for one byte in cp1252 or Latin-1: what UTF-8 bytes become when a file was decoded
# with the wrong one of those.
_SINGLE_BYTE: Final = {chr(b): b for b in range(0x80, 0x100)} | {
    bytes([b]).decode("cp1252"): b
    for b in range(0x80, 0x100)
    if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # undefined in cp1252
}
_SINGLE_BYTE_RUN: Final = re.compile("[" + re.escape("".join(sorted(_SINGLE_BYTE))) + "]+")
# What surrogateescape makes of an undecodable byte (U+DC80 + byte), and the C1 controls.
_SINGLE_BYTE_LEFT: Final = re.compile("[\udc80-\udcff\u0080-\u009f]")


class MeldFormatError(ValueError):
    """A CSV that is not in MELD's format, with the file and row to look at."""


def _undo_misdecoding(match: re.Match[str]) -> str:
    decoded = bytes(_SINGLE_BYTE[ch] for ch in match.group(0)).decode("utf-8", errors="surrogateescape")
    # A byte that starts no UTF-8 sequence was a character of its own: its cp1252 reading is the original
    # ("café", "’") or, for a C1 control, the punctuation cp1252 meant by it (so is a C1 control that
    # decoding produced: cp1252 punctuation that went through UTF-8 as Latin-1).
    return _SINGLE_BYTE_LEFT.sub(lambda m: _cp1252(ord(m.group(0)) % 0x100), decoded)


def _cp1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return ""  # the five codes cp1252 leaves undefined carry no text


def fix_mojibake(text: str) -> str:
    """Repairs the two encoding accidents of older MELD copies: UTF-8 read as cp1252 ('â€™' → '’') and
    cp1252 punctuation stored as C1 controls (U+0092 → '’')."""
    return _SINGLE_BYTE_RUN.sub(_undo_misdecoding, text)


@dataclass(frozen=True)
class MeldUtterance:
    dialogue_id: int
    utterance_id: int
    text: str
    speaker: str
    emotion: int
    """Index into emotion_contract.labels.EMOTIONS."""
    sentiment: int
    """Index into emotion_contract.labels.SENTIMENTS."""

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue_id}_utt{self.utterance_id}.mp4"


def _label(value: str, names: tuple[str, ...], where: str) -> int:
    try:
        return names.index(value.strip().lower())
    except ValueError:
        raise MeldFormatError(f"{where}: {value!r} is not one of {', '.join(names)}") from None


def _integer(value: str, column: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MeldFormatError(f"{where}: {column} {value!r} is not an integer") from None


def read_meld_csv(path: Path) -> list[MeldUtterance]:
    """The utterances of a MELD `*_sent_emo.csv` (UTF-8 with or without BOM, CRLF or LF line ends)."""
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MeldFormatError(f"{path}: not a MELD CSV, it lacks the columns {', '.join(missing)}")
        utterances = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            utterances.append(
                MeldUtterance(
                    dialogue_id=_integer(row["Dialogue_ID"], "Dialogue_ID", where),
                    utterance_id=_integer(row["Utterance_ID"], "Utterance_ID", where),
                    text=fix_mojibake(row["Utterance"]).strip(),
                    speaker=fix_mojibake(row["Speaker"]).strip(),
                    emotion=_label(row["Emotion"], EMOTIONS, where),
                    sentiment=_label(row["Sentiment"], SENTIMENTS, where),
                )
            )
    if not utterances:
        raise MeldFormatError(f"{path}: the CSV has a header but no utterances")
    return utterances


def split_csv(data_dir: Path, split: Split) -> Path:
    path = Path(data_dir) / f"{split}_sent_emo.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: --data must be a MELD.Raw folder holding {path.name}")
    return path


def split_clips_dir(data_dir: Path, split: Split) -> Path | None:
    """The split's clip folder, or None where only the CSVs exist."""
    for name in CLIP_DIRS[split]:
        if (Path(data_dir) / name).is_dir():
            return Path(data_dir) / name
    return None


@dataclass(frozen=True)
class UtteranceMedia:
    clip: npt.NDArray[np.uint8] | None
    """(video_frames, frame_size, frame_size, 3) RGB; None where the video is missing or shows no face."""
    audio: npt.NDArray[np.float32] | None
    """The utterance's samples at the model's rate (its centre when longer than audio_max_s)."""


def _fixed_length(clip: npt.NDArray[np.uint8], frames: int) -> npt.NDArray[np.uint8]:
    if len(clip) >= frames:
        return clip[:frames]
    # A decode that stopped early leaves fewer frames: hold the last one, as a still would look.
    return np.concatenate([clip, np.repeat(clip[-1:], frames - len(clip), axis=0)])


def load_utterance_media(
    path: Path, config: ModelConfig, *, video: bool = True, audio: bool = True
) -> UtteranceMedia:
    """One MELD clip's model inputs; what cannot be read is None (and logged), never an exception."""
    if not (video or audio) or not path.is_file():
        return UtteranceMedia(clip=None, audio=None)
    try:
        info = probe(path)
    except MediaError as error:
        logger.warning("%s cannot be used: %s", path, error.message)
        return UtteranceMedia(clip=None, audio=None)
    clip = None
    if video and info.has_video:
        span = (0.0, info.duration_s)
        frames = sample_span_frames(path, [span], n_frames=config.video_frames, size=config.frame_size)[0]
        # The same rule as the video encoder service: frames without a face are not the speaker's.
        if frames is not None and any(detect_faces(still) for still in frames.stills):
            clip = _fixed_length(frames.clip, config.video_frames)
    samples = None
    if audio and info.has_audio:
        try:
            loaded = load_audio(path, config.sample_rate)
        except MediaError as error:
            logger.warning("%s: no usable audio: %s", path, error.message)
        else:
            segment = audio_segment(loaded, 0.0, len(loaded) / config.sample_rate, config)
            samples = segment if len(segment) else None
    return UtteranceMedia(clip=clip, audio=samples)


def dialogue_rows(utterances: Sequence[MeldUtterance]) -> list[list[int]]:
    """Each dialogue's rows (indices into `utterances`) in Utterance_ID order: the conversations, in the
    order a transcript of each would give them."""
    dialogues: dict[int, list[int]] = {}
    for index, utterance in enumerate(utterances):
        dialogues.setdefault(utterance.dialogue_id, []).append(index)
    return [sorted(rows, key=lambda i: utterances[i].utterance_id) for rows in dialogues.values()]


def meld_window_inputs(
    utterances: Sequence[MeldUtterance], tokenizer: WordPieceTokenizer, window: ContextWindow
) -> list[WindowInput]:
    """Each utterance's text-encoder input, its context taken from its own dialogue in Utterance_ID order:
    the windows a transcript of the same conversation gives the services (shared.model.context)."""
    out: list[WindowInput | None] = [None] * len(utterances)
    for rows in dialogue_rows(utterances):
        windows = window_inputs(tokenizer, [utterances[i].text for i in rows], window)
        for row, item in zip(rows, windows, strict=True):
            out[row] = item
    return [item for item in out if item is not None]


def dialogue_batches(utterances: Sequence[MeldUtterance], max_rows: int) -> list[list[int]]:
    """Batches (indices into `utterances`) of whole dialogues, each in Utterance_ID order, packed up to
    `max_rows` rows (a longer dialogue is a batch of its own): what a model that reads conversations needs."""
    batches: list[list[int]] = []
    for rows in dialogue_rows(utterances):
        if batches and len(batches[-1]) + len(rows) <= max_rows:
            batches[-1].extend(rows)
        else:
            batches.append(rows)
    return batches


@dataclass(frozen=True)
class Sample:
    input_ids: torch.Tensor | None
    """(L,) token ids of the utterance's context window; None when the dataset serves cached features."""
    pool_mask: torch.Tensor | None
    """(L,) 1 on the utterance's own tokens, the ones its embedding averages."""
    text_features: torch.Tensor | None
    """(text_hidden,) the frozen backbone's mean-pooled output, when cached."""
    clip: torch.Tensor | None
    """(3, T, S, S) normalised frames."""
    mel: torch.Tensor | None
    """(1, n_mels, F) normalised log-mel."""
    present: torch.Tensor
    """(3,) 0/1 for text, video, audio."""
    emotion: int
    sentiment: int
    dialogue: int = -1
    """The MELD dialogue it belongs to (a dialogue model reads consecutive rows of one as a conversation)."""


@dataclass
class Batch:
    input_ids: torch.Tensor | None  # (B, L)
    attention_mask: torch.Tensor | None  # (B, L)
    pool_mask: torch.Tensor | None  # (B, L) the tokens each row's embedding averages
    text_features: torch.Tensor | None  # (B, text_hidden)
    video: torch.Tensor | None  # (B, 3, T, S, S), zeros where absent; None when no row has video
    audio: torch.Tensor | None  # (B, 1, n_mels, F), zeros where absent; None when no row has audio
    present: torch.Tensor  # (B, 3)
    emotion: torch.Tensor  # (B,)
    sentiment: torch.Tensor  # (B,)
    dialogue: torch.Tensor  # (B,) dialogue ids; a model that reads conversations needs dialogue_batches

    def __len__(self) -> int:
        return int(self.present.shape[0])

    def to(self, device: torch.device) -> "Batch":
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device, non_blocking=True)

        return Batch(
            input_ids=move(self.input_ids),
            attention_mask=move(self.attention_mask),
            pool_mask=move(self.pool_mask),
            text_features=move(self.text_features),
            video=move(self.video),
            audio=move(self.audio),
            present=self.present.to(device),
            emotion=self.emotion.to(device),
            sentiment=self.sentiment.to(device),
            dialogue=self.dialogue,
        )


class MeldDataset(Dataset[Sample]):
    """Per utterance: text (token ids, or cached backbone features), clip, log-mel, presence, labels."""

    def __init__(
        self,
        utterances: Sequence[MeldUtterance],
        *,
        config: ModelConfig,
        modalities: frozenset[Modality],
        tokenizer: WordPieceTokenizer | None = None,
        text_features: torch.Tensor | None = None,
        clips_dir: Path | None = None,
    ) -> None:
        if Modality.TEXT in modalities and (tokenizer is None) == (text_features is None):
            raise ValueError("give either a tokenizer or cached text features, not both or neither")
        if text_features is not None and len(text_features) != len(utterances):
            raise ValueError(f"{len(text_features)} cached text features for {len(utterances)} utterances")
        self.utterances = list(utterances)
        self.config = config
        self.modalities = modalities
        self.tokenizer = tokenizer
        self.text_inputs = (
            meld_window_inputs(self.utterances, tokenizer, config.context_window)
            if tokenizer is not None and text_features is None and Modality.TEXT in modalities
            else None
        )
        self.text_features = text_features
        self.clips_dir = clips_dir
        self.log_mel = LogMel(config)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Sample:
        utterance = self.utterances[index]
        present = torch.zeros(len(MODALITY_COLUMN))
        input_ids = pool_mask = features = None
        if Modality.TEXT in self.modalities:
            if self.text_features is not None:
                features = self.text_features[index]
            elif self.text_inputs is not None:
                window = self.text_inputs[index]
                input_ids = torch.tensor(window.input_ids, dtype=torch.long)
                pool_mask = torch.tensor(window.pool_mask, dtype=torch.long)
            present[MODALITY_COLUMN[Modality.TEXT]] = float(bool(utterance.text))
        clip = mel = None
        if self.clips_dir is not None:
            media = load_utterance_media(
                self.clips_dir / utterance.clip_name,
                self.config,
                video=Modality.VIDEO in self.modalities,
                audio=Modality.AUDIO in self.modalities,
            )
            if media.clip is not None:
                clip = clip_tensor(media.clip, self.config)  # (3, T, S, S)
                present[MODALITY_COLUMN[Modality.VIDEO]] = 1.0
            if media.audio is not None:
                mel = self.log_mel(media.audio)  # (1, n_mels, F)
                present[MODALITY_COLUMN[Modality.AUDIO]] = 1.0
        return Sample(
            input_ids=input_ids,
            pool_mask=pool_mask,
            text_features=features,
            clip=clip,
            mel=mel,
            present=present,
            emotion=utterance.emotion,
            sentiment=utterance.sentiment,
            dialogue=utterance.dialogue_id,
        )


class Collate:
    """Pads token ids and spectrograms, and stacks clips, with zeros in the rows a modality is missing."""

    def __init__(self, config: ModelConfig, pad_token_id: int = 0) -> None:
        self.config = config
        self.pad_token_id = pad_token_id

    def _tokens(self, samples: Sequence[Sample]) -> tuple[torch.Tensor, ...] | None:
        if any(s.input_ids is None or s.pool_mask is None for s in samples):
            return None
        windows = [
            WindowInput(input_ids=s.input_ids.tolist(), pool_mask=s.pool_mask.tolist())
            for s in samples
            if s.input_ids is not None and s.pool_mask is not None
        ]
        return pad_windows(windows, self.pad_token_id)  # (B, L) ids, attention, pool

    def _clips(self, samples: Sequence[Sample]) -> torch.Tensor | None:
        if all(s.clip is None for s in samples):
            return None
        size, frames = self.config.frame_size, self.config.video_frames
        blank = torch.zeros(3, frames, size, size)
        return torch.stack([s.clip if s.clip is not None else blank for s in samples])  # (B, 3, T, S, S)

    def _mels(self, samples: Sequence[Sample]) -> torch.Tensor | None:
        if all(s.mel is None for s in samples):
            return None
        blank = torch.zeros(1, self.config.n_mels, 1)
        mels = [s.mel if s.mel is not None else blank for s in samples]
        return pad_batch(mels, min_frames=min_mel_frames(self.config))  # (B, 1, n_mels, F)

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        tokens = self._tokens(samples)
        input_ids, attention_mask, pool_mask = tokens if tokens is not None else (None, None, None)
        features = [s.text_features for s in samples]
        return Batch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pool_mask=pool_mask,
            text_features=torch.stack([f for f in features if f is not None])
            if all(f is not None for f in features)
            else None,
            video=self._clips(samples),
            audio=self._mels(samples),
            present=torch.stack([s.present for s in samples]),
            emotion=torch.tensor([s.emotion for s in samples], dtype=torch.long),
            sentiment=torch.tensor([s.sentiment for s in samples], dtype=torch.long),
            dialogue=torch.tensor([s.dialogue for s in samples], dtype=torch.long),
        )


def conversation_loader(
    dataset: MeldDataset, *, batch_size: int, pad_token_id: int, workers: int = 0
) -> DataLoader[Sample]:
    """Evaluation batches of whole dialogues in spoken order, so that a model that reads conversations
    (shared.model.dialogue) reads each one as the services read a file; other models score the same."""
    return DataLoader(
        dataset,
        batch_sampler=dialogue_batches(dataset.utterances, batch_size),
        num_workers=workers,
        collate_fn=Collate(dataset.config, pad_token_id=pad_token_id),
    )
