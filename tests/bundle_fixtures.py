"""A freshly built default bundle, once per test session (the real MiniLM backbone, initial heads), whose
text encoder reads each utterance with the two before and the one after it, and whose dialogue model reads
the file's embeddings in order, as the default bundle may.

`EA_TEST_BUNDLE_DIR` names a built bundle to use instead: `make docs-pictures` takes the console's picture
with the default bundle's trained models."""

import os
from pathlib import Path

import pytest

from shared.model.build import build_initial_bundle
from shared.model.bundle import BundleManifest, LocalBundle, open_bundle
from training.face import DEFAULT_FACE_WEIGHTS

TEST_CONTEXT = (2, 1)
TEST_DIALOGUE_HIDDEN = 16


def build_test_bundle(root: Path) -> BundleManifest:
    # The real (small) face network, so that the stack's tests see a face where there is one.
    return build_initial_bundle(
        root,
        version="0.0.0-test",
        seed=0,
        face_weights=DEFAULT_FACE_WEIGHTS,
        context=TEST_CONTEXT,
        dialogue_hidden=TEST_DIALOGUE_HIDDEN,
    )


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if given := os.environ.get("EA_TEST_BUNDLE_DIR"):
        return Path(given).resolve()
    root = tmp_path_factory.mktemp("bundle") / "default"
    build_test_bundle(root)
    return root


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path) -> LocalBundle:
    return open_bundle(str(bundle_dir))
