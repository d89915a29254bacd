import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_contract.events import MediaInfo, ModalityFeatures, Span, Transcript, VideoTrack, VoiceFeatures
from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from shared.feature_matrix import to_array, to_matrix
from shared.model.bundle import COMPONENTS, MANIFEST, BundleError, LocalBundle, open_bundle
from shared.model.inference import AudioFeaturizer, FusionPredictor, TextFeaturizer, VideoFeaturizer
from shared.model.video import VideoEncoder
from shared.stages import fuse
from tests.bundle_fixtures import build_test_bundle, bundle, bundle_dir

__all__ = ["bundle", "bundle_dir"]


def test_manifest_lists_every_component_with_checksums(bundle: LocalBundle) -> None:
    manifest = bundle.manifest
    assert set(manifest.components) == {*COMPONENTS, "face"}
    assert manifest.components["face"].trained
    assert manifest.labels == {"emotion": list(EMOTIONS), "sentiment": list(SENTIMENTS)}
    assert manifest.model_config_.embed_dim == 128
    for spec in manifest.components.values():
        assert spec.files and all(len(f.sha256) == 64 for f in spec.files)
        assert spec.parameters > 0
    assert not manifest.components["video"].trained


def test_build_is_deterministic(bundle_dir: Path, tmp_path: Path) -> None:
    again = build_test_bundle(tmp_path / "again")
    first = json.loads((bundle_dir / MANIFEST).read_text())
    for name in COMPONENTS:
        assert [f.sha256 for f in again.components[name].files] == [
            f["sha256"] for f in first["components"][name]["files"]
        ]


def test_a_tampered_component_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    (copy / "audio.safetensors").write_bytes(b"not weights")
    open_bundle(str(copy), components=("fusion",))  # the other components still load
    with pytest.raises(BundleError, match="checksum"):
        open_bundle(str(copy), components=("audio",))
    with pytest.raises(BundleError, match="no bundle manifest"):
        open_bundle(str(tmp_path / "nowhere"))


def test_video_weights_stored_half_load_back_as_float32(bundle: LocalBundle) -> None:
    model = VideoEncoder(bundle.config)
    bundle.load_weights("video", model)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    clip = torch.zeros(1, 3, bundle.config.video_frames, 112, 112)
    with torch.inference_mode():
        assert model.eval()(clip).shape == (1, 128)


def test_text_embeddings_have_the_shared_shape(bundle: LocalBundle) -> None:
    text = TextFeaturizer(bundle)
    features = text.encode(["I am so happy today!", "", "This is terrible."])
    assert features.present == [True, False, True]
    assert features.features is not None and to_array(features.features).shape == (3, 128)
    assert text.encode(["", " "]).missing_reason == "no speech was found"


def test_untrained_branches_are_masked_unless_asked(bundle: LocalBundle) -> None:
    spans = [(0.0, 1.0), (1.0, 2.5)]
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, 16_000 * 3).astype(np.float32)
    skipped = AudioFeaturizer(bundle).encode(audio, spans).audio
    assert (
        skipped.features is None
        and not skipped.trained
        and "no trained weights" in (skipped.missing_reason or "")
    )
    forced = AudioFeaturizer(bundle, run_untrained=True).encode(audio, spans)
    assert forced.audio.features is not None and to_array(forced.audio.features).shape == (2, 128)
    assert forced.voice_emotions is None  # the mel CNN gives an embedding, not an expert's distribution
    missing = AudioFeaturizer(bundle).encode(None, spans).audio
    assert missing.missing_reason == "the file has no audio track"
    video = VideoFeaturizer(bundle, run_untrained=True)
    clips = video.clip_embeddings([np.zeros((30, 112, 112, 3), dtype=np.uint8), None])
    assert clips.shape == (2, 128) and clips[1].tolist() == [0.0] * 128
    faces = video.face_emotions(np.full((3, 48, 48), 128, dtype=np.uint8))
    assert faces.shape == (3, 7) and np.allclose(faces.sum(axis=1), 1.0, atol=1e-5)
    assert video.face_emotions(np.zeros((0, 48, 48), dtype=np.uint8)).shape == (0, 7)
    assert not VideoFeaturizer(bundle).model  # R3D-18 stays off while untrained


def test_fusion_gives_valid_fused_and_per_modality_distributions(bundle: LocalBundle) -> None:
    rng = np.random.default_rng(1)
    n = 3
    spans = [Span(index=i, start=float(i), end=i + 0.9, text=f"words {i}") for i in range(n)]
    text = ModalityFeatures(features=to_matrix(rng.random((n, 128))), present=[True] * n)
    audio = ModalityFeatures(features=to_matrix(rng.random((n, 128))), present=[True, False, True])
    transcript = Transcript(
        media=MediaInfo(duration_s=3.0, has_video=True, has_audio=True),
        language="en",
        utterances=spans,
        speech_found=True,
        text=text,
    )
    result = fuse(
        transcript=transcript,
        video_track=VideoTrack(interval_s=0.5, missing_reason="no face was found in the video"),
        audio=VoiceFeatures(audio=audio),
        predictor=FusionPredictor(bundle),
        bundle_version=bundle.version,
    )
    assert result.model_version == "0.0.0-test"
    assert [m.modality for m in result.missing_modalities] == ["video"]
    for u in result.utterances:
        assert abs(sum(s.confidence for s in u.emotions) - 1) < 1e-4
        assert abs(sum(s.confidence for s in u.sentiments) - 1) < 1e-4
        assert u.modalities[Modality.TEXT].available and u.modalities[Modality.TEXT].emotions is not None
        assert not u.modalities[Modality.VIDEO].available
        assert u.modalities[Modality.VIDEO].reason == "no face was found in the video"
    assert not result.utterances[1].modalities[Modality.AUDIO].available
    assert result.utterances[2].modalities[Modality.AUDIO].available


def test_face_expression_is_pooled_into_the_fused_distribution(bundle: LocalBundle) -> None:
    rng = np.random.default_rng(2)
    n = 2
    text = ModalityFeatures(features=to_matrix(rng.random((n, 128))), present=[True, True])
    absent = ModalityFeatures(features=None, present=[False] * n, missing_reason="untrained")
    video = ModalityFeatures(features=None, present=[True, False], trained=False)
    joyful = np.zeros((n, 7), dtype=np.float32)
    joyful[0, EMOTIONS.index("joy")] = 1.0
    predictor = FusionPredictor(bundle)
    without = predictor.predict(n, text, absent, absent)
    with_face = predictor.predict(n, text, video, absent, face_emotions=to_matrix(joyful))
    joy = EMOTIONS.index("joy")
    assert with_face["fused"][0][0][joy] > without["fused"][0][0][joy]  # the face pulls towards joy
    np.testing.assert_allclose(
        with_face["fused"][0][1], without["fused"][0][1], atol=1e-6
    )  # no face: as before
    np.testing.assert_allclose(with_face["fused"][0].sum(axis=1), 1.0, atol=1e-5)
    video_emotion, video_sentiment = with_face["video"]
    assert video_emotion[0].argmax() == joy and np.isnan(video_emotion[1]).all()
    np.testing.assert_allclose(video_sentiment[0].sum(), 1.0, atol=1e-5)


def test_sentiment_given_emotion_is_a_smoothed_conditional() -> None:
    from shared.model.face import sentiment_given_emotion

    table = sentiment_given_emotion([(3, 2), (3, 2), (0, 0)])
    assert table.shape == (7, 3)
    torch.testing.assert_close(table.sum(dim=1), torch.ones(7))
    assert table[3].argmax() == 2 and table[0].argmax() == 0
