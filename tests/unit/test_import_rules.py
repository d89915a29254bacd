"""What may import what (docs/architecture.md), read from every module's import statements.

The whole file is read, so imports inside functions and `TYPE_CHECKING` blocks count too.
"""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
# Each top-level package, and the folder its project keeps it in.
PACKAGES: Final = {
    "emotion_contract": REPO_ROOT / "contract",
    "emotion_analyzer": REPO_ROOT / "client",
    "shared": REPO_ROOT,
    "services": REPO_ROOT,
    "training": REPO_ROOT,
    "analyzer": REPO_ROOT,
    "devstack": REPO_ROOT,
    "scripts": REPO_ROOT,
    "tests": REPO_ROOT,
}
SERVICES: Final = ("gateway", "auth", "transcriber", "video_encoder", "audio_encoder", "fusion")
CONTRACT: Final = "emotion_contract"
# What needs torch or decodes media: the API containers carry neither (a file's header they may read).
MODEL_CODE: Final = (
    "shared.model",
    "shared.stages",
    "shared.media.decode",
    "shared.media.frames",
    "shared.transcription",
    "shared.assets",
    "shared.feature_matrix",
)


def module_name(path: Path) -> str:
    top = next(name for name, root in PACKAGES.items() if path.is_relative_to(root / name))
    parts = list(path.relative_to(PACKAGES[top]).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_imports(path: Path) -> Iterator[str]:
    """Every module the file imports, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield from ([module] if node.module else [f"{module}.{alias.name}" for alias in node.names])


def project_imports(path: Path) -> Iterator[str]:
    return (name for name in all_imports(path) if name.split(".")[0] in PACKAGES)


def files_of(top: str) -> list[Path]:
    name = top.split("/")[0]
    return sorted((PACKAGES[name] / top).rglob("*.py"))


def imports_of(top: str) -> list[tuple[str, str]]:
    return [(module_name(path), target) for path in files_of(top) for target in project_imports(path)]


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_reader_resolves_relative_imports() -> None:
    module = REPO_ROOT / "services" / "gateway" / "api" / "routes" / "usage.py"
    assert "services.gateway.api.deps" in set(project_imports(module))
    assert "services.gateway.errors" in set(project_imports(module))
    assert module_name(REPO_ROOT / "client" / "emotion_analyzer" / "models.py") == "emotion_analyzer.models"


def third_party_imports(top: str) -> set[str]:
    tops = {name.split(".")[0] for path in files_of(top) for name in all_imports(path)}
    return tops - set(sys.stdlib_module_names) - {top}


def test_the_contract_imports_pydantic_and_nothing_of_the_project() -> None:
    assert third_party_imports(CONTRACT) == {"pydantic"}


def test_the_client_imports_httpx_pydantic_and_the_contract_alone() -> None:
    assert third_party_imports("emotion_analyzer") <= {"httpx", "pydantic", CONTRACT}


def test_shared_imports_only_shared_and_the_contract() -> None:
    assert [(m, t) for m, t in imports_of("shared") if not under(t, ("shared", CONTRACT))] == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_itself_shared_and_the_contract(service: str) -> None:
    own = f"services.{service}"
    found = imports_of(f"services/{service}")
    assert [(m, t) for m, t in found if not under(t, (own, "shared", CONTRACT))] == []


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_the_api_services_import_no_model_code(service: str) -> None:
    assert [(m, t) for m, t in imports_of(f"services/{service}") if under(t, MODEL_CODE)] == []


def test_the_application_and_training_import_no_service() -> None:
    allowed = {
        "analyzer": ("analyzer", "shared", "emotion_analyzer", CONTRACT),
        "training": ("training", "shared", "analyzer", CONTRACT),
        "devstack": ("devstack", "shared", CONTRACT),
    }
    found = [(m, t) for top, ok in allowed.items() for m, t in imports_of(top) if not under(t, ok)]
    assert found == []
