"""The default bundle (`make model`): the text backbone its weights were trained on, with the committed
LoRA text weights merged in, trained projection and fusion; the same bytes on every build; it serves what
the training-time model computes."""

from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel

from emotion_contract.events import ModalityFeatures
from shared.assets import text_backbone_dir
from shared.feature_matrix import to_array
from shared.model.bundle import MANIFEST, LocalBundle, open_bundle, sha256_file
from shared.model.context import window_inputs
from shared.model.inference import (
    FUSION_RULE,
    AudioFeaturizer,
    FusionPredictor,
    TextFeaturizer,
    VideoFeaturizer,
)
from shared.model.pooling import PoolingRule
from shared.model.text import pad_windows
from training.default_bundle import (
    DEFAULT_RULE,
    DEFAULT_VERSION,
    DEFAULT_WEIGHTS,
    build_default_bundle,
    get_args_parser,
    main,
)
from training.evaluate import fitted_temperatures
from training.face_clips import DEFAULT_FACE_CLIPS_WEIGHTS, FaceClipsCard
from training.model import load_tokenizer
from training.text_weights import TextWeightsError, card_path, load_text_weights, read_card, text_classifier

SENTENCES = [
    "I can't believe you did that to me!",
    "Oh my God, that's wonderful, congratulations!",
    "Okay.",
    "I really miss him, you know?",
    "Wait, what? You're getting married?",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("default-bundle")
    build_default_bundle(root / "first")
    build_default_bundle(root / "second")
    return root / "first", root / "second"


@pytest.fixture(scope="module")
def bundle(built: tuple[Path, Path]) -> LocalBundle:
    return open_bundle(str(built[0]))


def files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_committed_weights_are_small_and_described_by_their_card() -> None:
    # Adapters, projection, GRU and fusion: MPNet's rank-16 adapters are most of it (the backbone is 438 MB).
    assert DEFAULT_WEIGHTS.stat().st_size < 8_000_000
    card = read_card(DEFAULT_WEIGHTS)
    assert card.sha256 == sha256_file(DEFAULT_WEIGHTS)
    encoder_command = card.dialogue.encoder_command if card.dialogue is not None else card.command
    assert encoder_command is not None and "--lora-rank" in encoder_command
    assert [Path(f.path).name for f in card.data] == ["train_sent_emo.csv", "dev_sent_emo.csv"]
    assert not any("test" in Path(f.path).name for f in card.data)


def test_two_builds_give_the_same_bytes(built: tuple[Path, Path]) -> None:
    first, second = (files(root) for root in built)
    assert first == second
    assert MANIFEST in first and "text/backbone/model.safetensors" in first


def test_text_and_fusion_are_trained_and_say_where_they_come_from(bundle: LocalBundle) -> None:
    manifest = bundle.manifest
    assert manifest.version == DEFAULT_VERSION
    trained = {name: spec.trained for name, spec in manifest.components.items()}
    assert trained == {"text": True, "video": False, "audio": True, "fusion": True, "face": True}
    text, fusion = manifest.components["text"].source, manifest.components["fusion"].source
    assert "Apache-2.0" in text and "GPL-3.0" in text and "LoRA" in text
    assert "GPL-3.0" in fusion and "temperatures fitted on dev" in fusion
    assert str(read_card(DEFAULT_WEIGHTS).created.year) in manifest.created_at.isoformat()


def test_each_component_records_its_training_data_and_licence(bundle: LocalBundle) -> None:
    components = bundle.manifest.components
    licences = {name: " ".join(d.licence for d in spec.trained_on) for name, spec in components.items()}
    assert "CC BY-NC-SA 4.0" in licences["audio"] and "GPL-3.0" in licences["text"]
    assert "research" in licences["face"] and licences["video"] == ""  # R3D-18 is untrained
    assert any("non-commercial" in d.note for d in components["audio"].trained_on)
    assert bundle.config.audio_encoder == "whisper-base-encoder"
    assert {f.path for f in components["audio"].files} >= {"audio.safetensors", "audio/whisper/model.bin"}
    assert "fusion_rule.json" in {f.path for f in components["fusion"].files}


def test_the_merged_backbone_is_a_plain_model_that_differs_from_the_pretrained_one(
    bundle: LocalBundle,
) -> None:
    backbone = bundle.config.text_backbone
    assert backbone == load_text_weights(DEFAULT_WEIGHTS).config.text_backbone
    merged = AutoModel.from_pretrained(str(bundle.path("text/backbone")))
    pretrained = AutoModel.from_pretrained(str(text_backbone_dir(backbone, Path("var/cache"))))
    assert type(merged) is type(pretrained)
    assert set(merged.state_dict()) == set(pretrained.state_dict())  # no adapter entries left
    adapted = [key for key in merged.state_dict() if key.endswith("q.weight") or key.endswith("query.weight")]
    assert adapted and not torch.equal(merged.state_dict()[adapted[0]], pretrained.state_dict()[adapted[0]])
    embeddings = "embeddings.word_embeddings.weight"  # LoRA left it alone
    assert torch.equal(merged.state_dict()[embeddings], pretrained.state_dict()[embeddings])


def test_the_services_serve_what_the_training_time_model_computes(bundle: LocalBundle) -> None:
    features = TextFeaturizer(bundle).encode(SENTENCES)
    n = len(SENTENCES)
    absent = ModalityFeatures(features=None, present=[False] * n, missing_reason="not in this test")
    served_emotion, served_sentiment = FusionPredictor(bundle).predict(n, features, absent, absent)["fused"]

    stored = load_text_weights(DEFAULT_WEIGHTS)
    backbone_dir = text_backbone_dir(stored.config.text_backbone, Path("var/cache"))
    model = text_classifier(stored, backbone_dir)  # LoRA beside, not merged
    # The sentences as one conversation, each in the window the weights were trained with.
    windows = window_inputs(load_tokenizer(backbone_dir), SENTENCES, bundle.config.context_window)
    ids, attention, pool = pad_windows(windows, pad_token_id=0)
    with torch.no_grad():
        text = model.text(ids, attention, pool)  # (n, 128)
        dialogue = model.text.projection.dialogue
        if dialogue is not None:  # the sentences are one file's conversation
            text = dialogue.conversations(text, [list(range(n))])
        zeros = torch.zeros_like(text)
        present = torch.tensor([[1.0, 0.0, 0.0]]).repeat(n, 1)
        emotion_logits, sentiment_logits = model.fusion(text, zeros, zeros, present)
    calibration = fitted_temperatures(model.fusion)
    assert calibration.emotion != 1.0  # calibrated
    emotion, sentiment = calibration.apply(emotion_logits, sentiment_logits)
    np.testing.assert_allclose(served_emotion, emotion.numpy(), atol=1e-4)
    np.testing.assert_allclose(served_sentiment, sentiment.numpy(), atol=1e-4)
    assert len({int(row.argmax()) for row in served_emotion}) > 1  # the sentences are told apart


def test_missing_or_foreign_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no text weights at"):
        main(get_args_parser().parse_args(["--out", str(tmp_path / "b"), "--weights", str(tmp_path / "x")]))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(TextWeightsError, match="is not a"):
        load_text_weights(foreign)
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(DEFAULT_WEIGHTS.read_bytes())
    with pytest.raises(TextWeightsError, match="card"):
        build_default_bundle(tmp_path / "no-card", weights=copy)
    card = card_path(DEFAULT_WEIGHTS).read_text()
    card_path(copy).write_text(card.replace('"sha256": "', '"sha256": "0', 1))
    with pytest.raises(TextWeightsError, match="sha256"):
        build_default_bundle(tmp_path / "wrong-card", weights=copy)


KIT = Path(__file__).resolve().parents[3] / "shared" / "data"
ANGRY_CLIP = KIT / "voice" / "ravdess" / "03-01-05-02-01-02-14.flac"  # actor 14, strong anger


@pytest.mark.skipif(not ANGRY_CLIP.is_file(), reason="the kit's voice data is not beside the checkout")
def test_the_voice_hears_a_ravdess_clip_and_is_pooled_with_the_words(bundle: LocalBundle) -> None:
    from shared.media.decode import load_audio

    audio = load_audio(ANGRY_CLIP)
    spans = [(0.6, 2.6), (50.0, 51.0)]  # the second lies past the end of the clip: no voice there
    encoded = AudioFeaturizer(bundle).encode(audio, spans)
    assert encoded.audio.trained and encoded.audio.present == [True, False]
    assert encoded.voice_emotions is not None
    voice = to_array(encoded.voice_emotions)
    assert voice.shape == (2, 7) and (voice[0] > 0).all()
    np.testing.assert_allclose(voice[0].sum(), 1.0, atol=1e-5)
    words = TextFeaturizer(bundle).encode(["Dogs are sitting by the door."] * 2)
    absent = ModalityFeatures(features=None, present=[False, False], missing_reason="no video")
    outputs = FusionPredictor(bundle).predict(
        2, words, absent, encoded.audio, voice_emotions=encoded.voice_emotions
    )
    np.testing.assert_allclose(outputs["audio"][0][0], voice[0], atol=1e-6)
    assert np.isnan(outputs["audio"][0][1]).all()  # no voice in the second span
    fused_emotion, fused_sentiment = outputs["fused"]
    np.testing.assert_allclose(fused_emotion[1], outputs["text"][0][1], atol=1e-6)  # the words alone
    np.testing.assert_allclose(fused_emotion.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fused_sentiment.sum(axis=1), 1.0, atol=1e-5)
    # The words of a RAVDESS sentence carry no emotion: the fused answer leans towards the voice.
    assert fused_emotion[0].argmax() == voice[0].argmax()


def test_the_face_network_is_trained_and_gives_calibrated_distributions(bundle: LocalBundle) -> None:
    video = VideoFeaturizer(bundle)
    # The temperature fitted out of fold on the kit's clips travels with the network, and the card says the
    # network learnt from those clips' faces as well as FER's.
    card = FaceClipsCard.model_validate_json(DEFAULT_FACE_CLIPS_WEIGHTS.with_suffix(".json").read_text())
    assert video.face is not None
    assert float(cast(torch.Tensor, video.face.temperature)) == pytest.approx(card.temperature, rel=1e-3)
    assert card.out_of_fold.n == 120 and card.fer_validation.n > 2000
    assert {d.name.split(" ")[0] for d in bundle.manifest.components["face"].trained_on} == {
        "FER2013",
        "Javanese",
    }
    crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    emotions = video.face_emotions(crops)
    np.testing.assert_allclose(emotions.sum(axis=1), 1.0, atol=1e-5)
    assert len({tuple(row) for row in emotions.round(6).tolist()}) == 3  # each face its own answer


def test_the_shipped_rule_is_what_the_bundle_carries_and_every_reader_uses(bundle: LocalBundle) -> None:
    """The fitted rule travels in the fusion component; the fusion service and the in-process analyzer both
    pool with FusionPredictor over the bundle's fusion component, so both use it."""
    shipped = PoolingRule.model_validate_json(DEFAULT_RULE.read_text())
    assert shipped.fitted and "fusion_fit" in shipped.fitted_on
    assert PoolingRule.model_validate_json(bundle.path(FUSION_RULE).read_text()) == shipped
    fusion_only = open_bundle(str(bundle.root), components=("fusion",))  # what the fusion service fetches
    assert FusionPredictor(fusion_only).rule == shipped
    assert FusionPredictor(bundle).rule == shipped
    # The voice learnt from the Javanese takes too, and says so.
    assert any("Javanese" in d.name for d in bundle.manifest.components["audio"].trained_on)
