"""Inference wrappers around each bundle component: what the services and the in-process command call.

Each class loads only its own component. Branches whose weights are untrained are not run unless asked
(`run_untrained`): their output would be noise, and the fusion masks them out anyway.

Two kinds of modality output: embeddings (text; R3D-18 and the mel CNN once trained) that the fusion MLP
reads, and calibrated distributions of an expert of its own (the face's expression, the voice's head),
which the fusion pools with the MLP's output by the bundle's fitted rule (`shared.model.pooling`).
"""

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, Field
from transformers import AutoModel, AutoTokenizer

from emotion_contract.events import (
    FeatureMatrix,
    MediaInfo,
    ModalityFeatures,
    VideoTrack,
    VoiceFeatures,
    VoiceInputs,
)
from emotion_contract.labels import Modality
from shared.feature_matrix import to_array, to_matrix
from shared.model.audio import AudioEncoder
from shared.model.bundle import LocalBundle, torch_device
from shared.model.context import WindowInput, window_inputs
from shared.model.dialogue import spoken_conversation
from shared.model.face import FaceExpressionNet, faces_tensor
from shared.model.fusion import FusionClassifier
from shared.model.pooling import PoolingRule, expert_scales, pool
from shared.model.preprocess import LogMel, audio_segment, clip_tensor, min_mel_frames, pad_batch
from shared.model.text import TextEncoder, pad_windows
from shared.model.video import VideoEncoder
from shared.model.voice import VOICE_ENCODER, VoiceHead, WhisperStates
from shared.speech_pass import FileStates, model_print, same_model

UNTRAINED = "the model bundle's {} encoder has no trained weights yet"
NO_SPEECH: Final = "no speech was found"
NO_AUDIO: Final = "the file has no audio track"


def _missing(n: int, reason: str, trained: bool = True) -> ModalityFeatures:
    return ModalityFeatures(features=None, present=[False] * n, missing_reason=reason, trained=trained)


class TextFeaturizer:
    def __init__(self, bundle: LocalBundle, device: str = "cpu", batch_size: int = 32) -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.batch_size = batch_size
        backbone_dir = bundle.path("text/backbone")
        self.tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
        self.pad_token_id: int = self.tokenizer.pad_token_id or 0
        self.model = TextEncoder(AutoModel.from_pretrained(str(backbone_dir)), self.config)
        bundle.load_weights("text", self.model.projection, "text/projection.safetensors")
        self.model.to(self.device).eval()
        self.trained = bundle.component("text").trained

    def inputs(self, texts: Sequence[str]) -> list[WindowInput]:
        """Each utterance's encoder input, read inside its context window (`texts` in spoken order)."""
        return window_inputs(self.tokenizer, texts, self.config.context_window)

    @torch.inference_mode()
    def embed(
        self, texts: Sequence[str], speakers: Sequence[str | None] | None = None
    ) -> npt.NDArray[np.float32]:
        """(n, 128) embeddings of utterances in spoken order, read in their conversation where the bundle
        has a dialogue model, with who speaks each (`speakers`) where it reads them; empty strings get one
        too (the caller masks them) and are no one's context."""
        inputs = self.inputs(texts)
        out = np.zeros((len(texts), self.config.embed_dim), dtype=np.float32)
        # Batches of similar length: a window's length varies far more than an utterance's.
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].input_ids))
        for first in range(0, len(order), self.batch_size):
            rows = order[first : first + self.batch_size]
            ids, attention, pool = (
                t.to(self.device) for t in pad_windows([inputs[i] for i in rows], self.pad_token_id)
            )
            out[rows] = self.model(ids, attention, pool).cpu().numpy()
        dialogue = self.model.projection.dialogue
        if dialogue is not None:
            # The file is one conversation: its spoken utterances in order.
            spoken = spoken_conversation([bool(t.strip()) for t in texts])
            read = dialogue.conversations(torch.from_numpy(out).to(self.device), spoken, speakers)
            out = read.cpu().numpy()
        return out

    def encode(self, texts: Sequence[str], speakers: Sequence[str | None] | None = None) -> ModalityFeatures:
        present = [bool(t.strip()) for t in texts]
        if not any(present):
            return _missing(len(texts), NO_SPEECH)
        features = to_matrix(self.embed(texts, speakers))
        return ModalityFeatures(features=features, present=present, trained=self.trained)


class VideoEncoding(BaseModel):
    """The video per utterance (`pool_video_track`): R3D-18 embeddings and the face's expression."""

    video: ModalityFeatures
    face_emotions: FeatureMatrix | None = Field(
        default=None,
        description="(n, 7) calibrated face-expression probabilities, MELD order; zeros where no face",
    )
    face_quality: list[float] | None = Field(
        default=None,
        description="(n,) mean quality of the face pictures each utterance overlaps; 0 where none",
    )


class VideoFeaturizer:
    """The facial-expression CNN over face crops, and R3D-18 over clips once it is trained."""

    def __init__(self, bundle: LocalBundle, device: str = "cpu", run_untrained: bool = False) -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.trained = bundle.component("video").trained
        self.model: VideoEncoder | None = None
        if self.trained or run_untrained:
            self.model = VideoEncoder(self.config)
            bundle.load_weights("video", self.model)
            self.model.to(self.device).eval()
        self.face: FaceExpressionNet | None = None
        face = bundle.manifest.components.get("face")
        if face is not None and (face.trained or run_untrained):
            self.face = FaceExpressionNet()
            bundle.load_weights("face", self.face)
            self.face.to(self.device).eval()

    @property
    def runs(self) -> bool:
        """Whether any branch has a model to run; a bundle with neither leaves the video out."""
        return self.face is not None or self.model is not None

    @torch.inference_mode()
    def face_emotions(self, crops: npt.NDArray[np.uint8], batch_size: int = 256) -> npt.NDArray[np.float32]:
        """(k, 7) calibrated face-expression distributions of (k, 48, 48) face crops."""
        if self.face is None:
            raise ValueError("the bundle has no trained face component")
        out = np.zeros((len(crops), self.config.n_emotions), dtype=np.float32)
        for first in range(0, len(crops), batch_size):
            batch = faces_tensor(crops[first : first + batch_size]).to(self.device)
            out[first : first + len(batch)] = self.face.probabilities(batch).cpu().numpy()
        return out

    @torch.inference_mode()
    def clip_embeddings(self, clips: Sequence[npt.NDArray[np.uint8] | None]) -> npt.NDArray[np.float32]:
        """(n, 128) R3D-18 embeddings of (T, S, S, 3) clips; zeros where a clip is None."""
        if self.model is None:
            raise ValueError("the bundle's R3D-18 branch is off (untrained)")
        out = np.zeros((len(clips), self.config.embed_dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            if clip is not None:
                batch = clip_tensor(clip, self.config).unsqueeze(0).to(self.device)  # (1, 3, T, S, S)
                out[i] = self.model(batch)[0].cpu().numpy()
        return out


def _overlapping(
    times: npt.NDArray[np.float64], half_s: float, start: float, end: float
) -> npt.NDArray[np.bool_]:
    """Which pictures, each standing for [t − half_s, t + half_s), overlap the span [start, end]."""
    return (times - half_s < end) & (times + half_s > start)


def pool_video_track(track: VideoTrack, spans: Sequence[tuple[float, float]]) -> VideoEncoding:
    """The video per utterance: the mean face distribution over the pictures its span overlaps (present
    where a face was seen in one of them) and their mean quality, and the mean R3D-18 embedding of the
    windows it overlaps."""
    n = len(spans)
    if track.missing_reason is not None:
        return VideoEncoding(video=_missing(n, track.missing_reason, trained=track.trained))
    times = np.asarray(track.face_times, dtype=np.float64)
    half = track.interval_s / 2
    overlaps = [_overlapping(times, half, start, end) for start, end in spans]
    present = [bool(inside.any()) for inside in overlaps]
    if not any(present):
        return VideoEncoding(video=_missing(n, "no face was seen while anyone spoke"))
    face_emotions = None
    quality = np.ones(len(times)) if track.face_quality is None else np.asarray(track.face_quality)
    face_quality = [round(float(quality[inside].mean()), 4) if inside.any() else 0.0 for inside in overlaps]
    if track.face_emotions is not None:
        distributions = to_array(track.face_emotions)
        pooled = np.zeros((n, distributions.shape[1]), dtype=np.float32)
        for i, inside in enumerate(overlaps):
            if inside.any():
                pooled[i] = distributions[inside].mean(axis=0)
        face_emotions = to_matrix(pooled)
    features = None
    if track.clip_features is not None:
        embeddings = to_array(track.clip_features)
        starts, ends = (np.asarray([w[k] for w in track.windows]) for k in (0, 1))
        rows = np.zeros((n, embeddings.shape[1]), dtype=np.float32)
        for i, (start, end) in enumerate(spans):
            windows = (starts < end) & (ends > start)
            if windows.any():
                rows[i] = embeddings[windows].mean(axis=0)
        features = to_matrix(rows)
    return VideoEncoding(
        video=ModalityFeatures(features=features, present=present, trained=track.trained),
        face_emotions=face_emotions,
        face_quality=face_quality,
    )


class AudioFeaturizer:
    """The voice per utterance: the Whisper-state head (an expert) or the mel-spectrogram CNN (an embedding),
    whichever the bundle carries (its config's `audio_encoder`)."""

    def __init__(
        self,
        bundle: LocalBundle,
        device: str = "cpu",
        run_untrained: bool = False,
        batch_size: int = 16,
        cpu_threads: int = 0,
    ) -> None:
        """`cpu_threads`: CTranslate2's threads for the Whisper encoder on a CPU (0: its default of 4)."""
        self.config = bundle.config
        self.device = torch_device(device)
        self.batch_size = batch_size
        self.trained = bundle.component("audio").trained
        self.log_mel = LogMel(self.config)
        self.model: AudioEncoder | None = None
        self.voice: VoiceHead | None = None
        self._states: WhisperStates | None = None
        self._whisper = (bundle.path("audio/whisper"), device, cpu_threads)
        if not (self.trained or run_untrained):
            return
        if self.config.audio_encoder == VOICE_ENCODER:
            self.voice = VoiceHead()
            bundle.load_weights("audio", self.voice)
            self.voice.to(self.device).eval()
        else:
            self.model = AudioEncoder(self.config)
            bundle.load_weights("audio", self.model)
            self.model.to(self.device).eval()

    @property
    def whisper_dir(self) -> Path:
        """The Whisper model whose encoder states the voice head reads."""
        return self._whisper[0]

    @property
    def states(self) -> WhisperStates:
        """The voice's own Whisper encoder, loaded when first needed: where the transcriber runs the same
        model, its states serve and this is never loaded."""
        if self._states is None:
            model_dir, device, cpu_threads = self._whisper
            self._states = WhisperStates(model_dir, device=device, cpu_threads=cpu_threads)
        return self._states

    def reads_states_of(self, whisper_dir: Path) -> bool:
        """Whether the voice head reads the states of that Whisper model (then its transcription's serve)."""
        return self.voice is not None and same_model(self.whisper_dir, whisper_dir)

    @functools.cached_property
    def whisper_print(self) -> str:
        """`model_print` of the voice's Whisper (read once: a copy is recognised without loading it)."""
        return model_print(self.whisper_dir)

    def reads_inputs(self, inputs: VoiceInputs) -> bool:
        """Whether the voice head reads these pooled inputs: states of its own Whisper, at its widenings."""
        return (
            self.voice is not None
            and inputs.whisper == self.whisper_print
            and np.allclose(inputs.margins_s, self.voice.margins)
        )

    def encode_inputs(
        self, inputs: VoiceInputs, media: MediaInfo, spans: Sequence[tuple[float, float]]
    ) -> VoiceFeatures:
        """The voice per utterance from the transcription's pooled inputs (`reads_inputs` must hold): the
        head alone, no audio and no encoder."""
        if self.voice is None or not self.reads_inputs(inputs):
            raise ValueError("these voice inputs are not what the bundle's voice head reads")
        pooled = to_array(inputs.pooled)
        if pooled.shape[0] != len(spans):
            raise ValueError(
                f"voice inputs for {pooled.shape[0]} utterances, the transcript has {len(spans)}"
            )
        return _voice_features(self.voice.pooled_probabilities(pooled), spans, media.duration_s)

    def file_states(self, audio: npt.NDArray[np.float32]) -> FileStates | None:
        """The voice head's Whisper states of the file's speech, as a transcription computes them: they need
        no utterance spans, so they can be computed while the transcriber looks for them. None when the
        voice is not that head."""
        return self.states.speech_states(audio) if self.voice is not None else None

    @torch.inference_mode()
    def voice_emotions(
        self,
        audio: npt.NDArray[np.float32],
        spans: Sequence[tuple[float, float]],
        states: FileStates | None = None,
    ) -> npt.NDArray[np.float32]:
        """(n, 7) calibrated distributions of the voice head, one per span of the file's `audio` (whose
        `file_states` may be given if they were computed already)."""
        if self.voice is None:
            raise ValueError("the bundle's audio component is not the voice head")
        if not spans:
            return np.zeros((0, self.config.n_emotions), dtype=np.float32)
        if states is None:
            states = self.states.speech_states(audio)
        return self.voice.span_probabilities(states, spans)

    @torch.inference_mode()
    def encode(
        self,
        audio: npt.NDArray[np.float32] | None,
        spans: Sequence[tuple[float, float]],
        states: FileStates | None = None,
    ) -> VoiceFeatures:
        n = len(spans)
        if audio is None:
            return VoiceFeatures(audio=_missing(n, NO_AUDIO))
        if self.model is None and self.voice is None:
            return VoiceFeatures(audio=_missing(n, UNTRAINED.format(Modality.AUDIO.value), trained=False))
        if self.voice is not None:
            emotions = self.voice_emotions(audio, spans, states)
            return _voice_features(emotions, spans, len(audio) / self.config.sample_rate)
        assert self.model is not None
        segments = [audio_segment(audio, start, end, self.config) for start, end in spans]
        out = np.zeros((n, self.config.embed_dim), dtype=np.float32)
        for first in range(0, n, self.batch_size):
            mels = [self.log_mel(s) for s in segments[first : first + self.batch_size]]
            batch = pad_batch(mels, min_mel_frames(self.config)).to(self.device)  # (B, 1, n_mels, F)
            out[first : first + len(mels)] = self.model(batch).cpu().numpy()
        present = [len(s) > 0 for s in segments]
        return VoiceFeatures(
            audio=ModalityFeatures(features=to_matrix(out), present=present, trained=self.trained)
        )


def _voice_features(
    emotions: npt.NDArray[np.float32], spans: Sequence[tuple[float, float]], duration_s: float
) -> VoiceFeatures:
    """The voice head's distributions as the stage sends them: present where the span holds sound."""
    present = [end > start and start < duration_s for start, end in spans]
    return VoiceFeatures(
        audio=ModalityFeatures(features=None, present=present, trained=True),
        voice_emotions=to_matrix(emotions * np.asarray(present, dtype=np.float32)[:, None]),
    )


FUSION_RULE: Final = "fusion_rule.json"
Distributions = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


class FusionPredictor:
    """Fused and per-modality distributions from the three modalities' outputs."""

    def __init__(self, bundle: LocalBundle, device: str = "cpu") -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.model = FusionClassifier(self.config)
        bundle.load_weights("fusion", self.model)
        self.model.to(self.device).eval()
        rule = bundle.path(FUSION_RULE)
        self.rule = (
            PoolingRule.model_validate_json(rule.read_text()) if rule.is_file() else PoolingRule.equal()
        )
        self.sentiment_given_emotion = (
            cast(torch.Tensor, self.model.face_sentiment_given_emotion).cpu().numpy()
        )

    def _matrix(self, features: ModalityFeatures, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if features.features is None:
            return torch.zeros(n, self.config.embed_dim), torch.zeros(n)
        matrix = to_array(features.features)
        if matrix.shape != (n, self.config.embed_dim):
            raise ValueError(f"expected features of shape {(n, self.config.embed_dim)}, got {matrix.shape}")
        return torch.from_numpy(matrix), torch.tensor(features.present, dtype=torch.float32)

    def _expert(
        self, distributions: FeatureMatrix | None, features: ModalityFeatures, n: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]] | None:
        """An expert modality's (n, 7) distributions and (n,) presence, if it sent any."""
        if distributions is None:
            return None
        matrix = to_array(distributions)
        if matrix.shape != (n, self.config.n_emotions):
            raise ValueError(
                f"expected distributions of shape {(n, self.config.n_emotions)}, got {matrix.shape}"
            )
        return matrix, np.asarray(features.present, dtype=bool)

    def predict(
        self,
        n: int,
        text: ModalityFeatures,
        video: ModalityFeatures,
        audio: ModalityFeatures,
        face_emotions: FeatureMatrix | None = None,
        voice_emotions: FeatureMatrix | None = None,
        face_quality: Sequence[float] | None = None,
        translated: Sequence[bool] | None = None,
    ) -> dict[str, Distributions]:
        """{'fused' | modality: ((n, 7) emotion, (n, 3) sentiment probabilities)} for what is present.

        Each modality's own distribution: the fusion MLP given that modality's embedding alone, or, for the
        face and the voice, their calibrated expert distributions (sentiment through P(sentiment | emotion)).
        The fused one pools them by the bundle's rule, the face's weight scaled by `face_quality` (per
        utterance, 0-1; None: 1) and the words' by the rule's `translated_words_scale` where `translated`.
        Rows a modality lacks are NaN in its output."""
        (t, t_p), (v, v_p), (a, a_p) = (self._matrix(m, n) for m in (text, video, audio))
        present = torch.stack([t_p, v_p, a_p], dim=1).to(self.device)  # (n, 3)
        t, v, a = (x.to(self.device) for x in (t, v, a))
        experts = {
            Modality.VIDEO: self._expert(face_emotions, video, n),
            Modality.AUDIO: self._expert(voice_emotions, audio, n),
        }
        own: dict[Modality, tuple[Distributions, npt.NDArray[np.bool_]]] = {}
        for column, modality in enumerate((Modality.TEXT, Modality.VIDEO, Modality.AUDIO)):
            expert = experts.get(modality)
            if expert is not None:
                emotion, here = expert
                own[modality] = ((emotion, emotion @ self.sentiment_given_emotion), here)
            elif bool(present[:, column].any()):
                only = torch.zeros_like(present)
                only[:, column] = present[:, column]
                e, s = self.model.probabilities(t, v, a, only)
                own[modality] = ((e.cpu().numpy(), s.cpu().numpy()), present[:, column].cpu().numpy() > 0)
        outputs: dict[str, Distributions] = {}
        for modality, ((emotion, sentiment), here) in own.items():
            emotion, sentiment = emotion.copy(), sentiment.copy()
            emotion[~here] = np.nan
            sentiment[~here] = np.nan
            outputs[modality.value] = (emotion.astype(np.float32), sentiment.astype(np.float32))
        # An utterance with no modality at all gets the prior the MLP learned for an all-masked input.
        prior_e, prior_s = (
            x.cpu().numpy() for x in self.model.probabilities(t, v, a, torch.zeros_like(present))
        )
        if not own:
            outputs["fused"] = (prior_e, prior_s)
            return outputs
        presence = {m: here for m, (_, here) in own.items()}
        emotion = pool(
            {m: d[0] for m, (d, _) in own.items()},
            presence,
            self.rule.emotion,
            expert_scales(self.rule.emotion, n, face_quality, translated),
        )
        sentiment = pool(
            {m: d[1] for m, (d, _) in own.items()},
            presence,
            self.rule.sentiment,
            expert_scales(self.rule.sentiment, n, face_quality, translated),
        )
        nothing = ~np.any(np.stack(list(presence.values())), axis=0)
        outputs["fused"] = (
            np.where(nothing[:, None], prior_e, emotion).astype(np.float32),
            np.where(nothing[:, None], prior_s, sentiment).astype(np.float32),
        )
        return outputs
