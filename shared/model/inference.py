"""Inference wrappers around each bundle component: what the services and the in-process command call.

Each class loads only its own component. Branches whose weights are untrained are not run unless asked
(`run_untrained`): their output would be noise, and the fusion masks them out anyway.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, Field
from transformers import AutoModel, AutoTokenizer

from shared.events import FeatureMatrix, ModalityFeatures
from shared.labels import Modality
from shared.model.audio import AudioEncoder
from shared.model.bundle import LocalBundle, torch_device
from shared.model.face import FaceExpressionNet, faces_tensor, meld_distribution
from shared.model.fusion import FusionClassifier
from shared.model.preprocess import LogMel, audio_segment, clip_tensor, min_mel_frames, pad_batch
from shared.model.text import TextEncoder
from shared.model.video import VideoEncoder

UNTRAINED = "the model bundle's {} encoder has no trained weights yet"


def _missing(n: int, reason: str, trained: bool = True) -> ModalityFeatures:
    return ModalityFeatures(features=None, present=[False] * n, missing_reason=reason, trained=trained)


class TextFeaturizer:
    def __init__(self, bundle: LocalBundle, device: str = "cpu", batch_size: int = 32) -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.batch_size = batch_size
        backbone_dir = bundle.path("text/backbone")
        self.tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
        self.model = TextEncoder(AutoModel.from_pretrained(str(backbone_dir)), self.config)
        bundle.load_weights("text", self.model.projection, "text/projection.safetensors")
        self.model.to(self.device).eval()
        self.trained = bundle.component("text").trained

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(n, 128) embeddings; empty strings get an embedding too (the caller masks them)."""
        out = np.zeros((len(texts), self.config.embed_dim), dtype=np.float32)
        for first in range(0, len(texts), self.batch_size):
            batch = list(texts[first : first + self.batch_size])
            tokens = self.tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=self.config.text_max_tokens,
                return_tensors="pt",
            ).to(self.device)
            out[first : first + len(batch)] = (
                self.model(tokens["input_ids"], tokens["attention_mask"]).cpu().numpy()
            )
        return out

    def encode(self, texts: Sequence[str]) -> ModalityFeatures:
        present = [bool(t.strip()) for t in texts]
        if not any(present):
            return _missing(len(texts), "no speech was found")
        return ModalityFeatures(
            features=FeatureMatrix.from_array(self.embed(texts)), present=present, trained=self.trained
        )


class VideoEncoding(BaseModel):
    """The video encoder's output: R3D-18 embeddings and, per utterance, the face's expression."""

    video: ModalityFeatures
    face_emotions: FeatureMatrix | None = Field(
        default=None, description="(n, 7) face-expression probabilities, MELD order; zeros where no face"
    )


class VideoFeaturizer:
    """R3D-18 over each utterance's clip of frames, and the facial-expression CNN over its face crops."""

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
        if "face" in bundle.manifest.components:
            self.face = FaceExpressionNet()
            bundle.load_weights("face", self.face)
            self.face.to(self.device).eval()

    @torch.inference_mode()
    def face_emotions(self, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """Per utterance, the mean face-expression distribution over its (k, 48, 48) crops; zeros if k = 0."""
        if self.face is None:
            raise ValueError("the bundle has no face component")
        out = np.zeros((len(crops), self.config.n_emotions), dtype=np.float32)
        for i, utterance_crops in enumerate(crops):
            if len(utterance_crops):
                scores = self.face(faces_tensor(utterance_crops).to(self.device))  # (k, 7), FER order
                out[i] = meld_distribution(scores).mean(dim=0).cpu().numpy()
        return out

    @torch.inference_mode()
    def encode(
        self, clips: Sequence[npt.NDArray[np.uint8] | None], face_crops: Sequence[npt.NDArray[np.uint8]]
    ) -> VideoEncoding:
        """clips: per utterance (T, S, S, 3) frames or None; face_crops: per utterance (k, 48, 48) faces."""
        n = len(clips)
        if not any(c is not None for c in clips):
            return VideoEncoding(video=_missing(n, "no video frames could be decoded"))
        faces = [len(c) > 0 for c in face_crops]
        if not any(faces):
            return VideoEncoding(video=_missing(n, "no face was found in the video"))
        face_emotions = FeatureMatrix.from_array(self.face_emotions(face_crops)) if self.face else None
        present = [c is not None and f for c, f in zip(clips, faces, strict=True)]
        if self.model is None:
            if face_emotions is None:
                return VideoEncoding(video=_missing(n, UNTRAINED.format(Modality.VIDEO.value), trained=False))
            # The face's expression stands for the video; R3D-18 stays out until it is trained.
            return VideoEncoding(
                video=ModalityFeatures(features=None, present=present, trained=False),
                face_emotions=face_emotions,
            )
        out = np.zeros((n, self.config.embed_dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            if clip is not None:
                batch = clip_tensor(clip, self.config).unsqueeze(0).to(self.device)  # (1, 3, T, S, S)
                out[i] = self.model(batch)[0].cpu().numpy()
        return VideoEncoding(
            video=ModalityFeatures(
                features=FeatureMatrix.from_array(out), present=present, trained=self.trained
            ),
            face_emotions=face_emotions,
        )


class AudioFeaturizer:
    """The mel-spectrogram CNN over each utterance's samples."""

    def __init__(
        self, bundle: LocalBundle, device: str = "cpu", run_untrained: bool = False, batch_size: int = 16
    ) -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.batch_size = batch_size
        self.trained = bundle.component("audio").trained
        self.log_mel = LogMel(self.config)
        self.model: AudioEncoder | None = None
        if self.trained or run_untrained:
            self.model = AudioEncoder(self.config)
            bundle.load_weights("audio", self.model)
            self.model.to(self.device).eval()

    @torch.inference_mode()
    def encode(
        self, audio: npt.NDArray[np.float32] | None, spans: Sequence[tuple[float, float]]
    ) -> ModalityFeatures:
        n = len(spans)
        if audio is None:
            return _missing(n, "the file has no audio track")
        if self.model is None:
            return _missing(n, UNTRAINED.format(Modality.AUDIO.value), trained=False)
        segments = [audio_segment(audio, start, end, self.config) for start, end in spans]
        out = np.zeros((n, self.config.embed_dim), dtype=np.float32)
        for first in range(0, n, self.batch_size):
            mels = [self.log_mel(s) for s in segments[first : first + self.batch_size]]
            batch = pad_batch(mels, min_mel_frames(self.config)).to(self.device)  # (B, 1, n_mels, F)
            out[first : first + len(mels)] = self.model(batch).cpu().numpy()
        present = [len(s) > 0 for s in segments]
        return ModalityFeatures(features=FeatureMatrix.from_array(out), present=present, trained=self.trained)


class FusionPredictor:
    """Fused and per-modality distributions from the three modalities' features."""

    def __init__(self, bundle: LocalBundle, device: str = "cpu") -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.model = FusionClassifier(self.config)
        bundle.load_weights("fusion", self.model)
        self.model.to(self.device).eval()

    def _matrix(self, features: ModalityFeatures, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if features.features is None:
            return torch.zeros(n, self.config.embed_dim), torch.zeros(n)
        matrix = features.features.to_array()
        if matrix.shape != (n, self.config.embed_dim):
            raise ValueError(f"expected features of shape {(n, self.config.embed_dim)}, got {matrix.shape}")
        return torch.from_numpy(matrix), torch.tensor(features.present, dtype=torch.float32)

    def predict(
        self,
        n: int,
        text: ModalityFeatures,
        video: ModalityFeatures,
        audio: ModalityFeatures,
        face_emotions: FeatureMatrix | None = None,
    ) -> dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
        """{'fused' | modality: ((n, 7) emotion, (n, 3) sentiment probabilities)} for what is present.

        The fusion MLP sees the embeddings that are present; the face's expression, where a face was seen,
        is pooled with its output (`FusionClassifier.pool_with_face`) and stands for the video modality's
        own distribution. Rows a modality lacks are NaN in that modality's output.
        """
        (t, t_p), (v, v_p), (a, a_p) = (self._matrix(m, n) for m in (text, video, audio))
        present = torch.stack([t_p, v_p, a_p], dim=1).to(self.device)  # (n, 3)
        t, v, a = (x.to(self.device) for x in (t, v, a))
        face, has_face = self._faces(face_emotions, video, n)
        face_emotion, face_sentiment = self.model.face_probabilities(face)

        def pooled(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            emotion, sentiment = self.model.probabilities(t, v, a, mask)
            nothing_else = mask.sum(dim=1) == 0
            emotion = torch.where(
                nothing_else.unsqueeze(-1) & (has_face > 0).unsqueeze(-1),
                face_emotion,
                self.model.pool_with_face(emotion, face_emotion, has_face),
            )
            sentiment = torch.where(
                nothing_else.unsqueeze(-1) & (has_face > 0).unsqueeze(-1),
                face_sentiment,
                self.model.pool_with_face(sentiment, face_sentiment, has_face),
            )
            return emotion, sentiment

        outputs: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
        emotion, sentiment = pooled(present)
        outputs["fused"] = (emotion.cpu().numpy(), sentiment.cpu().numpy())
        for column, modality in enumerate((Modality.TEXT, Modality.VIDEO, Modality.AUDIO)):
            available = present[:, column] + (has_face if modality is Modality.VIDEO else 0) > 0
            if not available.any():
                continue
            only = torch.zeros_like(present)
            only[:, column] = present[:, column]
            if modality is Modality.VIDEO:
                emotion, sentiment = pooled(only)
            else:
                emotion, sentiment = self.model.probabilities(t, v, a, only)
            emotion[~available] = float("nan")
            sentiment[~available] = float("nan")
            outputs[modality.value] = (emotion.cpu().numpy(), sentiment.cpu().numpy())
        return outputs

    def _faces(
        self, face_emotions: FeatureMatrix | None, video: ModalityFeatures, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 7) face distributions (uniform where none) and (n,) 0/1: was a face seen."""
        if face_emotions is None:
            return torch.full(
                (n, self.config.n_emotions), 1.0 / self.config.n_emotions, device=self.device
            ), (torch.zeros(n, device=self.device))
        matrix = torch.from_numpy(face_emotions.to_array()).to(self.device)
        if matrix.shape != (n, self.config.n_emotions):
            raise ValueError(
                f"expected face emotions of shape {(n, self.config.n_emotions)}, got {matrix.shape}"
            )
        has_face = torch.tensor(video.present, dtype=torch.float32, device=self.device)
        uniform = torch.full_like(matrix, 1.0 / self.config.n_emotions)
        return torch.where(has_face.unsqueeze(-1) > 0, matrix, uniform), has_face
