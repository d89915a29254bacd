"""LoRA training of the text backbone on a tiny MELD-format dataset (CSVs only, as on this machine): one
epoch, a merged bundle the services load without peft, and the small text weights the default bundle is
built from."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from emotion_contract.labels import Modality
from shared.assets import MPNET, minilm_dir
from shared.model.bundle import open_bundle, sha256_file
from shared.model.inference import TextFeaturizer
from tests.meld_factory import meld_row, write_meld_csv
from training import calibrate, checkpoints, train
from training.data import Collate, MeldDataset, read_meld_csv
from training.default_bundle import build_default_bundle
from training.model import MultimodalClassifier, load_tokenizer
from training.text_weights import load_text_weights, read_card
from training.train_config import parse_config

pytestmark = pytest.mark.integration

TRAIN = [
    ("I can't believe you did that to me!", "anger", "negative"),
    ("Oh wow, that is wonderful news.", "joy", "positive"),
    ("Okay.", "neutral", "neutral"),
    ("Wait, you're getting married?", "surprise", "positive"),
    ("I miss her so much.", "sadness", "negative"),
    ("Ew, that is disgusting.", "disgust", "negative"),
    ("There's someone in the house!", "fear", "negative"),
]
DEV = [
    ("This is the best day ever!", "joy", "positive"),
    ("Get out of my apartment.", "anger", "negative"),
    ("Sure, whatever.", "neutral", "neutral"),
]


@pytest.fixture(scope="module")
def meld_csvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("meld-csv")
    for split, rows in (("train", TRAIN), ("dev", DEV)):
        write_meld_csv(
            root / f"{split}_sent_emo.csv",
            [
                meld_row(i, text, emotion, sentiment, i // 2, i % 2)
                for i, (text, emotion, sentiment) in enumerate(rows)
            ],
        )
    return root


def test_lora_training_exports_a_merged_bundle_and_the_text_weights(meld_csvs: Path, tmp_path: Path) -> None:
    out, weights = tmp_path / "run", tmp_path / "weights" / "tiny.safetensors"
    argv = [
        "--data", meld_csvs, "--output-dir", out, "--modalities", "text", "--epochs", "1",
        "--lora-rank", "4", "--lr-lora", "1e-2", "--batch-size", "3", "--threads", "2", "--no-progress",
        "--text-weights", weights,
    ]  # fmt: skip
    summary = train.main(parse_config([str(a) for a in argv]), command="make it so")

    assert summary.trained_modalities == ["text"] and summary.text_weights == str(weights)
    checkpoint = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    backbone_keys = [k for k in checkpoint["model"] if k.startswith("text.backbone.")]
    assert backbone_keys and all(".lora_" in k for k in backbone_keys)  # the frozen weights are not stored
    assert {g["name"] for g in checkpoint["optimizer"]["param_groups"]} == {"lora", "projections", "fusion"}

    bundle = open_bundle(str(out / "bundle"))
    assert (
        bundle.component("text").trained
        and "LoRA (rank 4, alpha 8) merged" in bundle.component("text").source
    )
    merged = AutoModel.from_pretrained(str(bundle.path("text/backbone")))
    pretrained = AutoModel.from_pretrained(str(minilm_dir()))
    assert set(merged.state_dict()) == set(pretrained.state_dict())
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, pretrained.state_dict()[k])]
    assert changed and all(k.startswith("encoder.layer.") and k.endswith(".weight") for k in changed)

    card = read_card(weights)
    assert card.command == "make it so" and card.seed == 0 and card.lora.rank == 4
    assert [(Path(f.path).name, f.sha256, f.rows) for f in card.data] == [
        ("train_sent_emo.csv", sha256_file(meld_csvs / "train_sent_emo.csv"), len(TRAIN)),
        ("dev_sent_emo.csv", sha256_file(meld_csvs / "dev_sent_emo.csv"), len(DEV)),
    ]
    assert card.dev.n == len(DEV) and card.temperatures == summary.temperatures
    stored = load_text_weights(weights)
    assert len(stored.lora_state) == 6 * 6 * 2  # six layers, six adapted linears, A and B
    assert all(v.dtype == torch.float16 for v in stored.lora_state.values())
    assert stored.fusion["emotion_temperature"].dtype == torch.float32

    default = build_default_bundle(tmp_path / "default", weights=weights)
    assert default.components["text"].trained and default.components["fusion"].trained
    assert not default.components["video"].trained and default.components["audio"].trained  # the voice


def test_mpnet_with_context_trains_and_its_default_bundle_reads_what_training_read(
    meld_csvs: Path, tmp_path: Path
) -> None:
    out, weights = tmp_path / "run", tmp_path / "weights" / "mpnet.safetensors"
    argv = [
        "--data", meld_csvs, "--output-dir", out, "--modalities", "text", "--epochs", "1",
        "--text-backbone", MPNET, "--context-before", "2", "--context-after", "1",
        "--lora-rank", "2", "--batch-size", "4", "--threads", "2", "--no-progress", "--text-weights", weights,
    ]  # fmt: skip
    train.main(parse_config([str(a) for a in argv]), command="mpnet")
    stored = load_text_weights(weights)
    assert stored.config.text_backbone == MPNET and stored.config.text_hidden == 768
    assert len(stored.lora_state) == 12 * 6 * 2  # twelve layers: q, k, v, o, intermediate, output; A and B
    assert "mpnet" in read_card(weights).backbone

    manifest = build_default_bundle(tmp_path / "default", weights=weights)
    assert (manifest.config["text_context_before"], manifest.config["text_context_after"]) == (2, 1)
    assert "2 before and 1 after" in manifest.components["text"].source
    bundle = open_bundle(str(tmp_path / "default"))
    # What evaluation and training compute (MELD dialogues → windows → the training-time model) is what the
    # services' featurizer computes from the same conversation in spoken order.
    utterances = read_meld_csv(meld_csvs / "train_sent_emo.csv")
    dataset = MeldDataset(
        utterances,
        config=bundle.config,
        modalities=frozenset({Modality.TEXT}),
        tokenizer=load_tokenizer(bundle.path("text/backbone")),
    )
    batch = Collate(bundle.config, pad_token_id=1)([dataset[i] for i in range(len(dataset))])
    model = MultimodalClassifier.from_bundle(bundle).eval()
    with torch.inference_mode():
        trained_view = model.text(batch.input_ids, batch.attention_mask, batch.pool_mask).numpy()
    featurizer = TextFeaturizer(bundle)
    for dialogue in sorted({u.dialogue_id for u in utterances}):
        rows = sorted(
            (i for i, u in enumerate(utterances) if u.dialogue_id == dialogue),
            key=lambda i: utterances[i].utterance_id,
        )
        served = featurizer.embed([utterances[i].text for i in rows])
        np.testing.assert_allclose(served, trained_view[rows], atol=1e-4)


def test_a_run_killed_mid_epoch_resumes_at_the_batch_it_had_saved(
    meld_csvs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    argv = [
        "--data", meld_csvs, "--output-dir", out, "--modalities", "text", "--epochs", "1", "--lora-rank", "2",
        "--batch-size", "2", "--threads", "2", "--no-progress", "--save-every-minutes", "1e-9",
    ]  # fmt: skip
    args = parse_config([str(a) for a in argv])
    real_save = checkpoints.save_checkpoint

    def save_then_die(path: Path, state: dict[str, object]) -> None:
        real_save(path, state)
        if state["in_epoch"] is not None:
            raise KeyboardInterrupt  # as if the session ended right after the save

    monkeypatch.setattr(train, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train.main(args)
    saved = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert saved["epoch"] == -1 and saved["in_epoch"]["batches"] == 1 and saved["dev"] is None
    assert not (out / "best.pth").exists()

    monkeypatch.setattr(train, "save_checkpoint", real_save)
    summary = train.main(replace(args, resume=out / "checkpoint.pth", save_every_minutes=0.0))
    done = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert done["epoch"] == 0 and done["in_epoch"] is None
    assert done["modality_samples"]["text"] == len(TRAIN)  # every sample once: the saved batch was not redone
    assert summary.best_epoch == 0 and len(summary.seconds_per_epoch) == 1


def test_recalibrating_text_weights_fits_class_biases_and_rewrites_file_and_card(
    meld_csvs: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "tiny.safetensors"
    argv = [
        "--data", meld_csvs, "--output-dir", tmp_path / "run", "--modalities", "text", "--epochs", "1",
        "--lora-rank", "2", "--batch-size", "3", "--threads", "2", "--no-progress", "--text-weights", weights,
    ]  # fmt: skip
    train.main(parse_config([str(a) for a in argv]))
    before = read_card(weights)
    args = calibrate.get_args_parser().parse_args(
        ["--text-weights", str(weights), "--meld-csv", str(meld_csvs / "dev_sent_emo.csv")]
    )
    fitted = calibrate.main(args, command="refit it")
    card = read_card(weights)
    assert card.calibrated_by == "refit it" and card.command == before.command
    assert card.sha256 == sha256_file(weights) != before.sha256
    # Three dev utterances hold too few of each class for class biases: a temperature alone.
    assert fitted.emotion_bias == [0.0] * 7 and fitted.sentiment_bias == [0.0] * 3
    stored = load_text_weights(weights)
    assert float(stored.fusion["emotion_temperature"]) == pytest.approx(fitted.emotion, rel=1e-6)
    bundle = build_default_bundle(tmp_path / "default", weights=weights)
    assert bundle.components["fusion"].trained
