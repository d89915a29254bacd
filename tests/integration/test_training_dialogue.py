"""A dialogue model trained on top of text weights (training.train_dialogue) on a tiny MELD-format dataset:
its weights and card, the default bundle built from them, and the services' featurizer reading each file's
conversation as evaluation and training read each MELD dialogue."""

from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_contract.labels import Modality
from shared.model.bundle import open_bundle, sha256_file
from shared.model.dialogue import SPEAKER_FEATURES
from shared.model.inference import TextFeaturizer
from tests.meld_factory import meld_row, write_meld_csv
from training import train, train_dialogue
from training.data import MeldDataset, conversation_loader, dialogue_batches, dialogue_rows, read_meld_csv
from training.default_bundle import build_default_bundle
from training.evaluate import evaluate_bundle
from training.model import MultimodalClassifier, load_tokenizer
from training.text_weights import load_text_weights, read_card
from training.train_config import parse_config

pytestmark = pytest.mark.integration

DIALOGUES = {
    "train": [
        [
            ("You ate my sandwich?", "anger", "negative"),
            ("It was just sitting there.", "neutral", "neutral"),
            ("That was my lunch!", "anger", "negative"),
        ],
        [
            ("Guess who got the job!", "joy", "positive"),
            ("No way, you did?", "surprise", "positive"),
            ("", "neutral", "neutral"),  # nothing was said: no one's neighbour
            ("I'm so happy for you.", "joy", "positive"),
        ],
        [
            ("She's gone.", "sadness", "negative"),
            ("There's a spider on you.", "fear", "negative"),
            ("Ew, get it off.", "disgust", "negative"),
        ],
    ],
    "dev": [
        [
            ("We won the lottery!", "joy", "positive"),
            ("Are you serious?", "surprise", "positive"),
        ],
        [
            ("Get out.", "anger", "negative"),
            ("Fine.", "neutral", "neutral"),
            ("I hate this.", "disgust", "negative"),
        ],
    ],
}


@pytest.fixture(scope="module")
def meld_csvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("meld-dialogues")
    for split, dialogues in DIALOGUES.items():
        rows: list[dict[str, str]] = []
        for dialogue, lines in enumerate(dialogues):
            for utterance, (text, emotion, sentiment) in enumerate(lines):
                rows.append(meld_row(len(rows), text, emotion, sentiment, dialogue, utterance))
        rows.reverse()  # Utterance_ID, not the file's order, says who spoke first
        write_meld_csv(root / f"{split}_sent_emo.csv", rows)
    return root


@pytest.fixture(scope="module")
def dialogue_weights(meld_csvs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dialogue-weights")
    encoder = root / "encoder.safetensors"
    argv = [
        "--data", meld_csvs, "--output-dir", root / "run", "--modalities", "text", "--epochs", "1",
        "--lora-rank", "2", "--batch-size", "4", "--threads", "2", "--no-progress", "--text-weights", encoder,
    ]  # fmt: skip
    train.main(parse_config([str(a) for a in argv]), command="encoder")
    out = root / "dialogue.safetensors"
    argv = [
        "--text-weights", encoder, "--out", out, "--data", meld_csvs, "--hidden", "8", "--epochs", "3",
        "--lr", "0.05", "--dialogues-per-batch", "2",
    ]  # fmt: skip
    train_dialogue.main([str(a) for a in argv])
    return out


def test_the_weights_carry_the_encoder_unchanged_and_the_gru_with_its_card(
    dialogue_weights: Path, meld_csvs: Path
) -> None:
    encoder_path = dialogue_weights.parent / "encoder.safetensors"
    encoder, stored = load_text_weights(encoder_path), load_text_weights(dialogue_weights)
    assert stored.config.text_dialogue_hidden == 8 and encoder.config.text_dialogue_hidden == 0
    assert stored.lora_state.keys() == encoder.lora_state.keys()
    assert all(torch.equal(stored.lora_state[k], encoder.lora_state[k]) for k in encoder.lora_state)
    assert all(torch.equal(stored.projection[k], v) for k, v in encoder.projection.items())
    gru = {k for k in stored.projection if k.startswith("dialogue.")}
    assert {"dialogue.rnn.weight_ih_l0", "dialogue.rnn.weight_ih_l0_reverse", "dialogue.out.weight"} <= gru
    assert stored.projection["dialogue.out.weight"].abs().max() > 0  # it learnt something

    card = read_card(dialogue_weights)
    assert card.sha256 == sha256_file(dialogue_weights)
    assert card.command is not None and "training.train_dialogue" in card.command
    dialogue = card.dialogue
    assert dialogue is not None and dialogue.encoder_sha256 == encoder.sha256 and dialogue.hidden == 8
    assert dialogue.encoder_command == "encoder" and len(dialogue.seconds_per_epoch) == 3
    assert 1 <= dialogue.best_epoch <= 3 and len(dialogue.dev_per_epoch) == 3
    spoken_dev = sum(1 for lines in DIALOGUES["dev"] for text, _, _ in lines if text)
    assert card.dev.n == spoken_dev
    assert [Path(f.path).name for f in card.data] == ["train_sent_emo.csv", "dev_sent_emo.csv"]
    assert card.training_seconds > sum(card.seconds_per_epoch)


def test_the_services_read_each_file_as_evaluation_reads_each_dialogue(
    dialogue_weights: Path, meld_csvs: Path, tmp_path: Path
) -> None:
    manifest = build_default_bundle(tmp_path / "bundle", weights=dialogue_weights)
    assert manifest.config["text_dialogue_hidden"] == 8
    assert "bidirectional GRU (8 per direction)" in manifest.components["text"].source
    bundle = open_bundle(str(tmp_path / "bundle"))
    utterances = read_meld_csv(meld_csvs / "train_sent_emo.csv")
    dataset = MeldDataset(
        utterances,
        config=bundle.config,
        modalities=frozenset({Modality.TEXT}),
        tokenizer=load_tokenizer(bundle.path("text/backbone")),
    )
    model = MultimodalClassifier.from_bundle(bundle).eval()
    trained_view = np.zeros((len(utterances), bundle.config.embed_dim), dtype=np.float32)
    loader = conversation_loader(dataset, batch_size=4, pad_token_id=1)
    for batch, rows in zip(loader, dialogue_batches(utterances, 4), strict=True):
        with torch.inference_mode():
            trained_view[rows] = model._text(batch).numpy()
    featurizer = TextFeaturizer(bundle)
    spoken = [i for rows in dialogue_rows(utterances) for i in rows if utterances[i].text]
    for rows in dialogue_rows(utterances):
        served = featurizer.embed([utterances[i].text for i in rows])
        kept = [n for n, i in enumerate(rows) if i in spoken]
        np.testing.assert_allclose(served[kept], trained_view[[rows[n] for n in kept]], atol=1e-4)

    # Which can fail: each utterance read alone is another input than read in its conversation.
    lines = [text for text, _, _ in DIALOGUES["train"][0]]
    together = featurizer.embed(lines)
    alone = np.stack([featurizer.embed([line])[0] for line in lines])
    assert np.abs(together - alone).max() > 1e-3
    # A silent segment is nobody's neighbour.
    np.testing.assert_allclose(featurizer.embed([lines[0], "", *lines[1:]])[[0, 2, 3]], together, atol=1e-5)

    report = evaluate_bundle(bundle, meld_csvs / "dev_sent_emo.csv")
    assert report.n == len(read_meld_csv(meld_csvs / "dev_sent_emo.csv"))


def test_weights_that_already_read_conversations_are_refused(dialogue_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="already carries a dialogue model"):
        train_dialogue.main(
            ["--text-weights", str(dialogue_weights), "--out", str(tmp_path / "x.safetensors")]
        )


def test_a_gru_trained_with_speakers_says_so_and_is_scored_with_them_and_without(
    dialogue_weights: Path, meld_csvs: Path
) -> None:
    encoder = dialogue_weights.parent / "encoder.safetensors"
    out = dialogue_weights.parent / "dialogue-speakers.safetensors"
    argv = [
        "--text-weights", encoder, "--out", out, "--data", meld_csvs, "--hidden", "8", "--epochs", "2",
        "--lr", "0.05", "--dialogues-per-batch", "2", "--speakers",
    ]  # fmt: skip
    train_dialogue.main([str(a) for a in argv])
    stored, card = load_text_weights(out), read_card(out)
    assert stored.config.text_dialogue_speakers == SPEAKER_FEATURES
    assert (
        stored.projection["dialogue.rnn.weight_ih_l0"].shape[1] == stored.config.embed_dim + SPEAKER_FEATURES
    )
    assert card.dialogue is not None and card.dialogue.speakers and card.dialogue.speaker_dropout == 0.3
    assert (
        card.dialogue.dev_without_speakers is not None and card.dialogue.dev_without_speakers.n == card.dev.n
    )
    assert read_card(dialogue_weights).dialogue.speakers is False  # type: ignore[union-attr]
