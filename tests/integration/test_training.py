"""Training, resuming, calibrating and evaluating on a tiny MELD.Raw-layout dataset that the test makes:
real clips (a talking face, a face-less picture, no audio track, no file) with espeak-ng speech, on CPU.

The shapes are the model's own (30 frames at 112×112): only the number of samples is small.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.model.bundle import open_bundle
from shared.model.inference import FusionPredictor, TextFeaturizer
from tests.meld_factory import Clip, MeldSplit, Row, make_split
from training import calibrate, evaluate, train
from training.data import read_meld_csv
from training.model import MultimodalClassifier, Temperatures
from training.train_config import parse_config

pytestmark = pytest.mark.integration

TALKING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "talking"
TRAIN_ROWS = [
    Row("I can't believe you did that to me!", "anger", "negative", Clip.FACE),
    Row("Oh wow, that is wonderful news.", "joy", "positive", Clip.NO_FACE),
    Row("Okay.", "neutral", "neutral", Clip.SILENT),
    Row("Wait, you're getting married?", "surprise", "positive", Clip.MISSING),
    Row("I miss her so much.", "sadness", "negative", Clip.NO_FACE),
    Row("Ew, that is disgusting.", "disgust", "negative", Clip.NO_FACE),
]
DEV_ROWS = [
    Row("This is the best day ever!", "joy", "positive", Clip.FACE),
    Row("Get out of my apartment.", "anger", "negative", Clip.NO_FACE),
    Row("Sure, whatever.", "neutral", "neutral", Clip.MISSING),
]
FAST = ["--batch-size", "3", "--no-progress", "--threads", "2"]


@pytest.fixture(scope="module")
def meld_raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MeldSplit, MeldSplit]:
    root = tmp_path_factory.mktemp("MELD.Raw")
    face = TALKING / "vr_face_1.mp4"
    if not face.is_file():
        pytest.fail(f"{face} is missing: the shared data must sit beside the checkout")
    train_split = make_split(root, "train", "train_splits", TRAIN_ROWS, face)
    dev_split = make_split(root, "dev", "dev_splits_complete", DEV_ROWS, face, first_dialogue=100)
    return root, train_split, dev_split


@pytest.fixture(scope="module")
def text_only_dir(
    meld_raw: tuple[Path, MeldSplit, MeldSplit], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The same CSVs and no clips at all: the situation of this machine's real MELD copy."""
    root = tmp_path_factory.mktemp("meld-csv-only")
    for split in meld_raw[1:]:
        shutil.copy(split.csv, root / split.csv.name)
    return root


def run_training(*argv: str | Path) -> train.TrainSummary:
    return train.main(parse_config([str(a) for a in argv]))


def run_evaluate(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> dict[str, object]:
    capsys.readouterr()
    evaluate.main(evaluate.get_args_parser().parse_args([str(a) for a in argv]))
    printed: dict[str, object] = json.loads(capsys.readouterr().out)
    return printed


def test_multimodal_training_checkpoints_resumes_exports_and_evaluates(
    meld_raw: tuple[Path, MeldSplit, MeldSplit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, dev_split = meld_raw
    out = tmp_path / "run"
    common: list[str | Path] = [
        "--data", root, "--output-dir", out, "--freeze-text", "--cache-dir", tmp_path / "cache",
        "--modality-dropout", "0", "--blank-rate", "0", *FAST,
    ]  # fmt: skip
    first = run_training(*common, "--epochs", "1")

    assert first.trained_modalities == ["audio", "text", "video"]
    assert len(first.seconds_per_epoch) == 1
    checkpoint = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert checkpoint["config"]["video_frames"] == 30 and checkpoint["config"]["frame_size"] == 112
    assert checkpoint["modality_samples"] == {"text": 6, "video": 1, "audio": 4}
    assert not any(k.startswith("text.backbone.") for k in checkpoint["model"])  # frozen: not stored
    groups = {g["name"]: g for g in checkpoint["optimizer"]["param_groups"]}
    assert set(groups) == {"encoders", "projections", "fusion"}  # no backbone group when frozen
    # Adam keeps state only for parameters that got a gradient: the R3D-18 and mel CNN did.
    assert set(groups["encoders"]["params"]) <= set(checkpoint["optimizer"]["state"])
    assert (out / "best.pth").is_file()
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))

    resumed = run_training(*common, "--epochs", "2", "--resume", out / "checkpoint.pth")
    checkpoint = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert len(resumed.seconds_per_epoch) == 2  # the first epoch's time came with the checkpoint
    assert resumed.seconds_per_epoch[0] == first.seconds_per_epoch[0]
    assert checkpoint["modality_samples"] == {"text": 12, "video": 2, "audio": 8}

    bundle = open_bundle(str(out / "bundle"))
    assert {name: spec.trained for name, spec in bundle.manifest.components.items()} == {
        "text": True, "video": True, "audio": True, "fusion": True, "face": True,
    }  # fmt: skip
    assert bundle.config.video_frames == 30
    assert float(bundle.manifest.config["text_hidden"]) == 384  # type: ignore[arg-type]

    png = tmp_path / "confusion.png"
    report = run_evaluate(
        capsys, "--meld-csv", dev_split.csv, "--bundle", out / "bundle", "--clips-dir", dev_split.clips_dir,
        "--json", "--confusion-png", png,
    )  # fmt: skip
    for key in (
        "emotion_weighted_f1", "sentiment_weighted_f1", "emotion_accuracy", "sentiment_accuracy",
        "emotion_precision", "sentiment_precision", "emotion_ece",
    ):  # fmt: skip
        value = report[key]
        assert isinstance(value, float) and 0.0 <= value <= 1.0, key
    assert report["n"] == 3
    assert report["modalities"] == ["audio", "text", "video"]
    # face + speech, picture + speech, no clip
    assert report["present"] == {"text": 3, "video": 1, "audio": 2}
    assert report["temperatures"] == pytest.approx(
        {"emotion": resumed.temperatures.emotion, "sentiment": resumed.temperatures.sentiment}, rel=1e-5
    )
    assert png.read_bytes().startswith(b"\x89PNG")


def test_text_only_training_fine_tunes_and_serves_through_the_inference_classes(
    text_only_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "text"
    summary = run_training("--data", text_only_dir, "--output-dir", out, "--epochs", "1", *FAST)

    assert summary.modalities == ["audio", "text", "video"]
    assert summary.trained_modalities == ["text"]
    checkpoint = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert any(k.startswith("text.backbone.") for k in checkpoint["model"])  # fine-tuned: stored
    assert {g["name"] for g in checkpoint["optimizer"]["param_groups"]} == {
        "backbone",
        "projections",
        "fusion",
    }

    bundle = open_bundle(str(out / "bundle"))
    trained = {name: spec.trained for name, spec in bundle.manifest.components.items()}
    assert trained == {"text": True, "video": False, "audio": False, "fusion": True, "face": True}
    assert "fine-tuned" in bundle.component("text").source
    assert (bundle.path("text/backbone") / "tokenizer.json").is_file()

    dev_csv = text_only_dir / "dev_sent_emo.csv"
    report = run_evaluate(capsys, "--meld-csv", dev_csv, "--bundle", out / "bundle", "--json")
    assert report["modalities"] == ["text"] and report["n"] == 3

    # The services' classes read the same bundle and give the distributions the evaluation scores.
    features = TextFeaturizer(bundle).encode([u.text for u in read_meld_csv(dev_csv)])
    empty = features.model_copy(update={"features": None, "present": [False] * 3})
    served_emotion, served_sentiment = FusionPredictor(bundle).predict(3, features, empty, empty)["fused"]
    model = MultimodalClassifier.from_bundle(bundle)
    scored = evaluate.bundle_predictions(model, bundle, dev_csv, clips_dir=None, device=torch.device("cpu"))
    emotion, sentiment = scored[evaluate.FUSED].probabilities(evaluate.fitted_temperatures(model.fusion))
    assert np.allclose(served_emotion, emotion.numpy(), atol=1e-5)
    assert np.allclose(served_sentiment, sentiment.numpy(), atol=1e-5)


def test_evaluate_without_json_prints_a_readable_report(
    text_only_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "frozen"
    run_training(
        "--data", text_only_dir, "--output-dir", out, "--epochs", "1", "--freeze-text",
        "--modalities", "text", "--cache-dir", tmp_path / "cache", *FAST,
    )  # fmt: skip
    capsys.readouterr()
    dev_csv = text_only_dir / "dev_sent_emo.csv"
    evaluate.main(
        evaluate.get_args_parser().parse_args(["--meld-csv", str(dev_csv), "--bundle", str(out / "bundle")])
    )
    printed = capsys.readouterr().out
    assert "fused emotion: accuracy" in printed and "weighted F1" in printed
    assert "true \\ pred" in printed and "surprise" in printed
    # The temperatures written into a bundle are what it serves (open_bundle checks the new checksum), and
    # refitting them on dev finds again what training fitted.
    bundle_dir = out / "bundle"

    def served_temperatures() -> tuple[float, float]:
        calibration = evaluate.fitted_temperatures(
            MultimodalClassifier.from_bundle(open_bundle(str(bundle_dir))).fusion
        )
        return calibration.emotion, calibration.sentiment

    fitted_in_training = served_temperatures()
    model = MultimodalClassifier.from_bundle(open_bundle(str(bundle_dir)))
    calibrate.set_temperatures(model.fusion, Temperatures(emotion=3.0, sentiment=3.0))
    calibrate.rewrite_fusion(bundle_dir, model.fusion)
    assert served_temperatures() == pytest.approx((3.0, 3.0))
    refit = calibrate.main(
        calibrate.get_args_parser().parse_args(["--meld-csv", str(dev_csv), "--bundle", str(bundle_dir)])
    )
    assert (refit.emotion, refit.sentiment) == pytest.approx(fitted_in_training, rel=1e-3)
    assert served_temperatures() == pytest.approx((refit.emotion, refit.sentiment))
    with pytest.raises(SystemExit, match="no such CSV"):
        evaluate.main(evaluate.get_args_parser().parse_args(["--meld-csv", str(tmp_path / "nope.csv")]))
