"""Versioned model bundles: a manifest, one weights file (or folder) per component, labels, preprocessing.

Layout of a bundle directory (locally or under an object-store prefix):

    manifest.json              BundleManifest: version, ModelConfig, labels, components with sha256
    text/backbone/...          the BERT-family backbone in Hugging Face format (config, tokenizer, weights)
    text/projection.safetensors
    video.safetensors          R3D-18 + projection
    face.safetensors           facial-expression CNN (optional; the video encoder loads it with video)
    audio.safetensors          voice head on Whisper states (config audio_encoder "whisper-base-encoder",
    audio/whisper/...          with the CTranslate2 Whisper model it reads), or mel CNN + projection
    fusion.safetensors         fusion MLP, heads and calibration temperatures
    fusion_rule.json           how the modalities' distributions are pooled (shared.model.pooling)

A service asks for the components it needs; from the object store only their files are fetched, into a
cache keyed by the bundle version, and each file is checked against the manifest's sha256.
"""

import hashlib
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from torch import nn

from emotion_contract.labels import EMOTIONS, SENTIMENTS
from shared.model.config import ModelConfig
from shared.settings import ModelSettings
from shared.storage import ObjectStore

MANIFEST: Final = "manifest.json"
FORMAT_VERSION: Final = 1
ComponentName = Literal["text", "video", "audio", "fusion", "face"]
COMPONENTS: Final[tuple[ComponentName, ...]] = ("text", "video", "audio", "fusion")  # every bundle has these
OPTIONAL_COMPONENTS: Final[tuple[ComponentName, ...]] = ("face",)


class BundleError(RuntimeError):
    pass


class FileEntry(BaseModel):
    path: str = Field(description="Relative to the bundle root, '/'-separated")
    sha256: str
    size: int


class TrainingData(BaseModel):
    """A data set a component's weights were trained (or calibrated) on, and the terms that come with it."""

    name: str
    licence: str
    note: str = Field(default="", description="What the licence means for the weights, e.g. non-commercial")


class ComponentSpec(BaseModel):
    files: list[FileEntry]
    trained: bool = Field(description="False while the component holds initialised weights only")
    source: str = Field(description="How the weights were obtained, and their licence")
    parameters: int = Field(ge=0)
    trained_on: list[TrainingData] = Field(default_factory=list)


class BundleManifest(BaseModel):
    format_version: Literal[1] = FORMAT_VERSION
    name: str
    version: str
    created_at: datetime
    config: dict[str, object]
    labels: dict[str, list[str]]
    components: dict[ComponentName, ComponentSpec]
    notes: str = ""

    def files_of(self, name: ComponentName) -> list[FileEntry]:
        """The component's files; none for an optional component this bundle does not have."""
        if name not in self.components and name not in OPTIONAL_COMPONENTS:
            raise BundleError(f"bundle {self.version} has no {name} component")
        spec = self.components.get(name)
        return spec.files if spec else []

    @property
    def model_config_(self) -> ModelConfig:
        return ModelConfig.from_dict(dict(self.config))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entries(root: Path, paths: list[Path]) -> list[FileEntry]:
    return [
        FileEntry(path=p.relative_to(root).as_posix(), sha256=sha256_file(p), size=p.stat().st_size)
        for p in sorted(paths)
    ]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_state(module: nn.Module, path: Path, half: bool = False) -> Path:
    """Weights as safetensors; `half` stores floating tensors as float16 (loaded back as float32)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in module.state_dict().items()
    }
    save_file(state, str(path))
    return path


def load_tensors(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Loads every entry of the module's state (strictly), in the module's own dtypes (float16 → float32)."""
    reference = module.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    module.load_state_dict(state, strict=True)


def load_state(module: nn.Module, path: Path) -> None:
    load_tensors(module, load_file(str(path)))


class BundleWriter:
    """Collects components into a directory and writes its manifest last (a bundle without one is partial)."""

    def __init__(
        self,
        root: Path,
        *,
        name: str,
        version: str,
        config: ModelConfig,
        notes: str = "",
        created_at: datetime | None = None,
    ) -> None:
        """`created_at` (default: now) fixed by a caller whose bundle must be byte-identical when rebuilt."""
        self.root = root
        self.name = name
        self.version = version
        self.config = config
        self.notes = notes
        self.created_at = created_at
        self.components: dict[ComponentName, ComponentSpec] = {}
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)

    def add_module(
        self,
        name: ComponentName,
        module: nn.Module,
        *,
        trained: bool,
        source: str,
        half: bool = False,
        trained_on: list[TrainingData] | None = None,
    ) -> None:
        path = save_state(module, self.root / f"{name}.safetensors", half=half)
        self.components[name] = ComponentSpec(
            files=_entries(self.root, [path]),
            trained=trained,
            source=source,
            parameters=_count(module),
            trained_on=trained_on or [],
        )

    def add_text(
        self,
        backbone_dir: Path,
        projection: nn.Module,
        *,
        trained: bool,
        source: str,
        parameters: int,
        trained_on: list[TrainingData] | None = None,
    ) -> None:
        target = self.root / "text" / "backbone"
        shutil.copytree(
            backbone_dir, target, ignore=shutil.ignore_patterns("*.onnx", "onnx", "openvino", "*.h5")
        )
        projection_path = save_state(projection, self.root / "text" / "projection.safetensors")
        files = [p for p in target.rglob("*") if p.is_file()] + [projection_path]
        self.components["text"] = ComponentSpec(
            files=_entries(self.root, files),
            trained=trained,
            source=source,
            parameters=parameters,
            trained_on=trained_on or [],
        )

    def add_files(self, name: ComponentName, sources: dict[str, Path]) -> None:
        """Copies files into the bundle as more files of an added component: {relative path: source}."""
        spec = self.components[name]
        targets = []
        for relative, source in sources.items():
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            targets.append(target)
        spec.files = sorted([*spec.files, *_entries(self.root, targets)], key=lambda e: e.path)

    def write(self) -> BundleManifest:
        missing = set(COMPONENTS) - set(self.components)
        if missing:
            raise BundleError(f"bundle is missing components: {sorted(missing)}")
        manifest = BundleManifest(
            name=self.name,
            version=self.version,
            created_at=self.created_at or datetime.now(UTC),
            config=self.config.to_dict(),
            labels={"emotion": list(EMOTIONS), "sentiment": list(SENTIMENTS)},
            components=self.components,
            notes=self.notes,
        )
        (self.root / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        return manifest


class LocalBundle:
    """A bundle on local disk, holding at least the files of the components that were asked for."""

    def __init__(self, root: Path, manifest: BundleManifest) -> None:
        self.root = root
        self.manifest = manifest
        self.config = manifest.model_config_

    @property
    def version(self) -> str:
        return self.manifest.version

    def component(self, name: ComponentName) -> ComponentSpec:
        return self.manifest.components[name]

    def path(self, relative: str) -> Path:
        return self.root / relative

    def load_weights(self, name: ComponentName, module: nn.Module, relative: str | None = None) -> None:
        load_state(module, self.path(relative or f"{name}.safetensors"))

    def verify(self, components: tuple[ComponentName, ...] = COMPONENTS) -> None:
        for name in components:
            for entry in self.manifest.files_of(name):
                path = self.path(entry.path)
                if not path.is_file() or sha256_file(path) != entry.sha256:
                    raise BundleError(f"{self.root}: {entry.path} is missing or does not match its checksum")


def read_manifest(path: Path) -> BundleManifest:
    try:
        return BundleManifest.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"no bundle manifest at {path}") from exc


def parse_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise BundleError(f"not an s3://BUCKET/PREFIX uri: {uri}")
    return bucket, prefix.strip("/")


def open_bundle(
    uri: str,
    *,
    components: tuple[ComponentName, ...] = COMPONENTS,
    store: ObjectStore | None = None,
    cache_dir: Path = Path("var/cache/bundles"),
) -> LocalBundle:
    """Open a bundle from a local directory or from s3://BUCKET/PREFIX (fetching only `components`)."""
    if not uri.startswith("s3://"):
        root = Path(uri)
        bundle = LocalBundle(root, read_manifest(root / MANIFEST))
        bundle.verify(components)
        return bundle
    if store is None:
        raise BundleError(f"{uri} is in the object store, but no store was given")
    bucket, prefix = parse_s3_uri(uri)
    key = f"{prefix}/{MANIFEST}" if prefix else MANIFEST
    # Services on one machine may share the cache: every download lands under a name of its own first.
    (cache_dir / ".incoming").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir / ".incoming"))
    try:
        store.download_file(bucket, key, staging / MANIFEST)
        manifest = read_manifest(staging / MANIFEST)
        root = cache_dir / bucket / prefix / manifest.version
        for name in components:
            for entry in manifest.files_of(name):
                target = root / entry.path
                if target.is_file() and sha256_file(target) == entry.sha256:
                    continue
                fetched = store.download_file(
                    bucket, f"{prefix}/{entry.path}" if prefix else entry.path, staging / entry.path
                )
                if sha256_file(fetched) != entry.sha256:
                    raise BundleError(f"{uri}: {entry.path} does not match its checksum")
                target.parent.mkdir(parents=True, exist_ok=True)
                fetched.replace(target)
        (staging / MANIFEST).replace(root / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return LocalBundle(root, manifest)


def publish_bundle(root: Path, store: ObjectStore, uri: str) -> BundleManifest:
    """Upload a local bundle to s3://BUCKET/PREFIX, the manifest last: readers never see a partial one."""
    manifest = read_manifest(root / MANIFEST)
    LocalBundle(root, manifest).verify()
    bucket, prefix = parse_s3_uri(uri)
    store.ensure_bucket(bucket)
    for spec in manifest.components.values():
        for entry in spec.files:
            store.upload_file(bucket, f"{prefix}/{entry.path}" if prefix else entry.path, root / entry.path)
    store.upload_file(
        bucket, f"{prefix}/{MANIFEST}" if prefix else MANIFEST, root / MANIFEST, "application/json"
    )
    return manifest


def open_for_service(settings: ModelSettings, store: ObjectStore, *components: ComponentName) -> LocalBundle:
    """The components a service needs, from its settings' bundle URI; applies its torch thread count."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    return open_bundle(
        settings.bundle_uri, components=components, store=store, cache_dir=Path(settings.bundle_cache_dir)
    )


def torch_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BundleError(f"device {name} was asked for, but CUDA is not available")
    return device
