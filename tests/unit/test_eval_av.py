"""The whole-analysis score on the kit's real clips: labels read from the kit, views scored per clip."""

from pathlib import Path

import pytest
import torch

from emotion_contract.labels import EMOTIONS, Modality, WordsSource
from emotion_contract.results import (
    AnalysisResult,
    ModalityPrediction,
    UtteranceResult,
    emotion_scores,
    sentiment_scores,
)
from shared.model.bundle import load_state, save_state
from shared.model.face import FaceExpressionNet
from tests.bundle_fixtures import bundle_dir
from training.eval_av import ClipAnalysis, FoldModels, list_av_clips, report
from training.face import DEFAULT_FACE_WEIGHTS

__all__ = ["bundle_dir"]

KIT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "av" / "javanese"


def test_the_kit_lists_120_clips_of_five_actors_and_six_emotions() -> None:
    if not (KIT / "labels.csv").is_file():
        pytest.skip("the kit's clips are not beside the repository")
    clips = list_av_clips(KIT)
    assert len(clips) == 120 and all(c.path.is_file() for c in clips)
    assert sorted({c.actor for c in clips}) == ["01", "02", "03", "04", "05"]
    assert {EMOTIONS[c.label] for c in clips} == set(EMOTIONS) - {"disgust"}


def _one_hot(label: str, p: float = 0.7) -> list[float]:
    rest = (1 - p) / 6
    return [p if e == label else rest for e in EMOTIONS]


def _analysis(stem: str, actor: str, label: str, face: str, voice: str | None) -> ClipAnalysis:
    def prediction(emotion: str | None) -> ModalityPrediction:
        if emotion is None:
            return ModalityPrediction(available=False, reason="none")
        return ModalityPrediction(
            available=True,
            emotions=emotion_scores(_one_hot(emotion)),
            sentiments=sentiment_scores([0.2, 0.6, 0.2]),
        )

    utterance = UtteranceResult(
        index=0,
        start_time=0.0,
        end_time=2.0,
        text="x",
        words=WordsSource.MISSING,
        emotions=emotion_scores(_one_hot(face)),
        sentiments=sentiment_scores([0.2, 0.6, 0.2]),
        modalities={
            Modality.VIDEO: prediction(face),
            Modality.AUDIO: prediction(voice),
            Modality.TEXT: prediction(None),
        },
    )
    result = AnalysisResult(model_version="t", duration_s=2.0, language="id", utterances=[utterance])
    return ClipAnalysis(stem=stem, actor=actor, label=EMOTIONS.index(label), seconds=1.0, result=result)


def test_each_view_is_scored_over_the_clips_it_covers_and_per_actor() -> None:
    analyses = [
        _analysis("a", "01", "joy", face="joy", voice="anger"),
        _analysis("b", "01", "anger", face="joy", voice="anger"),
        _analysis("c", "02", "fear", face="fear", voice=None),
    ]
    av = report(Path("kit"), "t", {}, analyses)
    assert set(av.views) == {"face", "voice", "fused"}  # no clip had words
    assert av.views["face"].clips == 3 and av.views["face"].scores.accuracy == pytest.approx(2 / 3)
    assert av.views["voice"].clips == 2 and av.views["voice"].scores.accuracy == pytest.approx(1 / 2)
    assert av.views["face"].per_actor_weighted_f1["02"] == 1.0
    assert av.words_read == {"transcript": 0, "translation": 0, "missing": 3}
    assert av.languages == {"id": 3}


def test_a_fold_face_network_reads_the_clip_again_and_only_the_face_changes(
    bundle_dir: Path, tmp_path: Path
) -> None:
    if not (KIT / "labels.csv").is_file():
        pytest.skip("the kit's clips are not beside the repository")
    clip = next(c for c in list_av_clips(KIT) if c.actor == "03")  # actor 03: fold 2
    # A fold network that sees fear in every face: its reading must replace the face's and nothing else.
    net = FaceExpressionNet()
    load_state(net, DEFAULT_FACE_WEIGHTS)
    last = net.classifier[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.bias[EMOTIONS.index("fear")] += 50.0
    save_state(net, tmp_path / "face" / "fold-2.safetensors")
    analysis = _analysis(clip.stem, clip.actor, "joy", face="joy", voice="anger")
    folds = FoldModels(None, bundle_dir, tmp_path / "face")
    assert sorted(folds.face) == [2] and not folds.voice
    again = folds.face_again(clip, analysis.result).utterances[0]
    before = analysis.result.utterances[0]
    face = again.modalities[Modality.VIDEO].emotions
    assert face is not None and max(face, key=lambda s: s.confidence).label == "fear"
    assert again.modalities[Modality.AUDIO] == before.modalities[Modality.AUDIO]
    assert again.emotions == before.emotions  # the fused answer is pooled again by `refuse`, not here
    # A clip of another fold is left as it was.
    other = next(c for c in list_av_clips(KIT) if c.actor == "01")
    assert folds.face_again(other, analysis.result) == analysis.result
