"""What may import what (docs/architecture.md), read from every module's import statements.

The whole file is read, so imports inside functions and `TYPE_CHECKING` blocks count too.
"""

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
PROJECT: Final = (
    "shared",
    "services",
    "training",
    "analyzer",
    "emotion_analyzer",
    "devstack",
    "scripts",
    "tests",
)
SERVICES: Final = ("gateway", "auth", "transcriber", "video_encoder", "audio_encoder", "fusion")

# The contract modules the client still reads from `shared` until they move to a package of their own.
CLIENT_CONTRACTS: Final = ("shared.accounts_api", "shared.events", "shared.labels", "shared.results")
# What needs torch or decodes media: the API containers carry neither (a file's header they may read).
MODEL_CODE: Final = (
    "shared.model",
    "shared.stages",
    "shared.media.decode",
    "shared.media.frames",
    "shared.transcription",
    "shared.assets",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_imports(path: Path) -> Iterator[str]:
    """Every project module the file imports, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] in PROJECT)


def imports_of(top: str) -> list[tuple[str, str]]:
    root = REPO_ROOT / top
    return [
        (module_name(path), target) for path in sorted(root.rglob("*.py")) for target in project_imports(path)
    ]


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_reader_resolves_relative_imports(tmp_path: Path) -> None:
    module = REPO_ROOT / "services" / "gateway" / "api" / "routes" / "usage.py"
    assert "services.gateway.api.deps" in set(project_imports(module))
    assert "services.gateway.errors" in set(project_imports(module))


def test_shared_imports_only_shared() -> None:
    assert [(m, t) for m, t in imports_of("shared") if not under(t, ("shared",))] == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_itself_and_shared(service: str) -> None:
    own = f"services.{service}"
    assert [(m, t) for m, t in imports_of(f"services/{service}") if not under(t, (own, "shared"))] == []


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_the_api_services_import_no_model_code(service: str) -> None:
    assert [(m, t) for m, t in imports_of(f"services/{service}") if under(t, MODEL_CODE)] == []


def test_the_client_imports_only_itself_and_the_contracts() -> None:
    allowed = ("emotion_analyzer", *CLIENT_CONTRACTS)
    assert [(m, t) for m, t in imports_of("emotion_analyzer") if not under(t, allowed)] == []


def test_the_application_and_training_import_no_service() -> None:
    allowed = {
        "analyzer": ("analyzer", "shared", "emotion_analyzer"),
        "training": ("training", "shared", "analyzer"),
    }
    found = [(m, t) for top, ok in allowed.items() for m, t in imports_of(top) if not under(t, ok)]
    assert found == []


def test_the_local_stack_starts_the_services_without_importing_them() -> None:
    assert [(m, t) for m, t in imports_of("devstack") if not under(t, ("devstack", "shared"))] == []
