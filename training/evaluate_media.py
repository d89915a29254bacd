"""Scores a bundle's face and voice on labelled data of their own (`python -m training.evaluate --faces NPZ
--speech DIR`): faces in the kit's npz format (48×48 grey, MELD's class order), and speech files named as
RAVDESS's or Emo-DB's, each analysed through the whole in-process pipeline (the transcriber finds its
utterances, the voice and the words are read over their spans, the fusion pools them), exactly as an
upload would be.
"""

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from emotion_contract.labels import EMOTIONS, Modality
from emotion_contract.results import AnalysisResult, EmotionScore
from shared.model.bundle import open_bundle
from shared.model.face import faces_tensor
from shared.model.inference import VideoFeaturizer
from training.face import load_faces
from training.metrics import HeadScores, score_head
from training.voice_data import list_clips


class FaceReport(BaseModel):
    npz: str
    bundle_version: str
    emotion: HeadScores
    per_class_f1: dict[str, float]


class SpeechReport(BaseModel):
    directory: str
    bundle_version: str
    files: int
    voice: HeadScores = Field(description="the voice alone")
    words: HeadScores | None = Field(description="the words alone, on the files where speech was found")
    fused: HeadScores = Field(description="the fused result: voice with the transcript's words")
    voice_per_class_f1: dict[str, float]
    fused_per_class_f1: dict[str, float]


def per_class_f1(scores: HeadScores) -> dict[str, float]:
    from sklearn.metrics import f1_score

    confusion = np.asarray(scores.confusion)
    truth = np.repeat(np.arange(len(scores.labels)), confusion.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(len(scores.labels)), row) for row in confusion])
    values = f1_score(truth, predicted, labels=range(len(scores.labels)), average=None, zero_division=0)
    return {label: round(float(v), 4) for label, v in zip(scores.labels, values, strict=True)}


def evaluate_faces(bundle_dir: Path, npz: Path, batch_size: int = 256) -> FaceReport:
    bundle = open_bundle(str(bundle_dir), components=("video", "face"))
    video = VideoFeaturizer(bundle)
    if video.face is None:
        raise SystemExit(f"error: bundle {bundle.version} has no trained face network")
    images, labels = load_faces(npz)
    out = []
    with torch.inference_mode():
        for first in range(0, len(images), batch_size):
            out.append(video.face.probabilities(faces_tensor(images[first : first + batch_size])))
    scores = score_head(torch.cat(out).numpy(), labels, EMOTIONS)
    return FaceReport(
        npz=str(npz), bundle_version=bundle.version, emotion=scores, per_class_f1=per_class_f1(scores)
    )


def emotion_distribution(scores: list[EmotionScore]) -> np.ndarray:
    """A sorted list of emotion scores as probabilities in MELD's order."""
    by_label = {s.label.value: s.confidence for s in scores}
    return np.array([by_label[e] for e in EMOTIONS], dtype=np.float64)


def file_distribution(result: AnalysisResult, modality: Modality | None) -> np.ndarray | None:
    """The file's distribution: its utterances' (fused or one modality's), weighted by their length."""
    rows, weights = [], []
    for u in result.utterances:
        if modality is None:
            rows.append(emotion_distribution(u.emotions))
        else:
            prediction = u.modalities[modality]
            if not prediction.available or prediction.emotions is None:
                continue
            rows.append(emotion_distribution(prediction.emotions))
        weights.append(max(u.end_time - u.start_time, 1e-3))
    if not rows:
        return None
    mean: np.ndarray = np.average(np.stack(rows), axis=0, weights=weights)
    normalised: np.ndarray = mean / mean.sum()
    return normalised


def evaluate_speech(bundle_dir: Path, directory: Path, whisper_model: str = "base") -> SpeechReport:
    from analyzer.pipeline import InProcessAnalyzer, PipelineOptions

    analyzer = InProcessAnalyzer(PipelineOptions(bundle_uri=str(bundle_dir), whisper_model=whisper_model))
    clips = list_clips(directory)
    voice, words, fused = [], [], []
    labels, worded = [], []
    for clip in clips:
        result = analyzer.analyze(clip.path)
        voice_p = file_distribution(result, Modality.AUDIO)
        if voice_p is None:
            raise SystemExit(f"error: no voice in {clip.path}: is it speech?")
        voice.append(voice_p)
        fused_p = file_distribution(result, None)
        assert fused_p is not None  # every utterance has a fused distribution
        fused.append(fused_p)
        labels.append(clip.label)
        if (words_p := file_distribution(result, Modality.TEXT)) is not None:
            words.append(words_p)
            worded.append(clip.label)
    truth = np.array(labels)
    voice_scores = score_head(np.stack(voice), truth, EMOTIONS)
    fused_scores = score_head(np.stack(fused), truth, EMOTIONS)
    return SpeechReport(
        directory=str(directory),
        bundle_version=analyzer.bundle_version,
        files=len(clips),
        voice=voice_scores,
        words=score_head(np.stack(words), np.array(worded), EMOTIONS) if words else None,
        fused=fused_scores,
        voice_per_class_f1=per_class_f1(voice_scores),
        fused_per_class_f1=per_class_f1(fused_scores),
    )
