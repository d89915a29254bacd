"""Bundles published to and opened from the real S3 server, one component at a time."""

from pathlib import Path

import pytest

from shared.model.bundle import MANIFEST, BundleError, open_bundle, publish_bundle
from shared.storage import ObjectStore
from tests.bundle_fixtures import bundle_dir

__all__ = ["bundle_dir"]
pytestmark = pytest.mark.integration


def test_a_service_fetches_only_its_component(
    bundle_dir: Path, object_store: ObjectStore, tmp_path: Path
) -> None:
    uri = "s3://models/bundles/test-only-fusion"
    manifest = publish_bundle(bundle_dir, object_store, uri)
    cache = tmp_path / "cache"
    bundle = open_bundle(uri, components=("fusion",), store=object_store, cache_dir=cache)
    assert bundle.version == manifest.version
    fetched = {p.relative_to(bundle.root).as_posix() for p in bundle.root.rglob("*") if p.is_file()}
    assert fetched == {MANIFEST, "fusion.safetensors"}
    again = open_bundle(uri, components=("fusion", "audio"), store=object_store, cache_dir=cache)
    assert (again.root / "audio.safetensors").is_file()
    assert not list((cache / ".incoming").iterdir())


def test_a_corrupted_object_is_refused(bundle_dir: Path, object_store: ObjectStore, tmp_path: Path) -> None:
    uri = "s3://models/bundles/test-corrupt"
    publish_bundle(bundle_dir, object_store, uri)
    broken = tmp_path / "broken"
    broken.write_bytes(b"tampered")
    object_store.upload_file("models", "bundles/test-corrupt/audio.safetensors", broken)
    with pytest.raises(BundleError, match="checksum"):
        open_bundle(uri, components=("audio",), store=object_store, cache_dir=tmp_path / "cache")
    with pytest.raises(BundleError, match="no store"):
        open_bundle(uri, components=("audio",))
