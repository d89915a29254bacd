"""Inference wrappers around each bundle component: what the services and the in-process command call.

Each class loads only its own component. Branches whose weights are untrained are not run unless asked
(`run_untrained`): their output would be noise, and the fusion masks them out anyway.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer

from shared.events import FeatureMatrix, ModalityFeatures
from shared.labels import Modality
from shared.model.audio import AudioEncoder
from shared.model.bundle import LocalBundle, torch_device
from shared.model.fusion import FusionClassifier
from shared.model.preprocess import LogMel, audio_segment, clip_tensor, pad_batch
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


class VideoFeaturizer:
    """R3D-18 over each utterance's clip of frames."""

    def __init__(self, bundle: LocalBundle, device: str = "cpu", run_untrained: bool = False) -> None:
        self.config = bundle.config
        self.device = torch_device(device)
        self.trained = bundle.component("video").trained
        self.active = self.trained or run_untrained
        self.model: VideoEncoder | None = None
        if self.active:
            self.model = VideoEncoder(self.config)
            bundle.load_weights("video", self.model)
            self.model.to(self.device).eval()

    @torch.inference_mode()
    def encode(
        self, clips: Sequence[npt.NDArray[np.uint8] | None], faces: Sequence[bool]
    ) -> ModalityFeatures:
        """clips: per utterance (T, S, S, 3) frames or None; faces: whether a face was seen in it."""
        n = len(clips)
        if not any(c is not None for c in clips):
            return _missing(n, "no video frames could be decoded")
        if not any(faces):
            return _missing(n, "no face was found in the video")
        if self.model is None:
            return _missing(n, UNTRAINED.format(Modality.VIDEO.value), trained=False)
        out = np.zeros((n, self.config.embed_dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            if clip is not None:
                batch = clip_tensor(clip, self.config).unsqueeze(0).to(self.device)  # (1, 3, T, S, S)
                out[i] = self.model(batch)[0].cpu().numpy()
        present = [c is not None and f for c, f in zip(clips, faces, strict=True)]
        return ModalityFeatures(features=FeatureMatrix.from_array(out), present=present, trained=self.trained)


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
            batch = pad_batch(mels).to(self.device)  # (B, 1, n_mels, F)
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
        self, n: int, text: ModalityFeatures, video: ModalityFeatures, audio: ModalityFeatures
    ) -> dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
        """{'fused' | modality: ((n, 7) emotion, (n, 3) sentiment probabilities)} for what is present.

        Utterances with no modality at all are given the fused output of an all-zero input, which the
        trained model learns to be the prior; rows a modality lacks are NaN in that modality's output.
        """
        (t, t_p), (v, v_p), (a, a_p) = (self._matrix(m, n) for m in (text, video, audio))
        present = torch.stack([t_p, v_p, a_p], dim=1)  # (n, 3)
        t, v, a = (x.to(self.device) for x in (t, v, a))
        outputs: dict[str, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
        emotion, sentiment = self.model.probabilities(t, v, a, present.to(self.device))
        outputs["fused"] = (emotion.cpu().numpy(), sentiment.cpu().numpy())
        for column, modality in enumerate((Modality.TEXT, Modality.VIDEO, Modality.AUDIO)):
            if not present[:, column].any():
                continue
            only = torch.zeros_like(present)
            only[:, column] = present[:, column]
            emotion, sentiment = self.model.probabilities(t, v, a, only.to(self.device))
            emotion[present[:, column] == 0] = float("nan")
            sentiment[present[:, column] == 0] = float("nan")
            outputs[modality.value] = (emotion.cpu().numpy(), sentiment.cpu().numpy())
        return outputs
