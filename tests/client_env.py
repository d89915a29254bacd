"""The client installed the way a user installs it: its wheel and the contract's, built from this checkout,
into a fresh virtual environment, with pydantic and httpx (and what they need) from the package index."""

import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
OUR_FOLDERS: Final = ("contract", "client")
UNBUILT: Final = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")


def install_client(root: Path) -> Path:
    """A fresh environment under `root` with the client installed; its python."""
    wheels = root / "wheels"
    # Built from copies: a build leaves build/ and *.egg-info beside the sources it reads.
    sources = [shutil.copytree(REPO_ROOT / name, root / "src" / name, ignore=UNBUILT) for name in OUR_FOLDERS]
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels)]
    subprocess.run([*build, *map(str, sources)], check=True, timeout=300)
    venv.create(root / "env", with_pip=True)
    python = root / "env" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*install, "--find-links", str(wheels), "emotion-analyzer-client"], check=True, timeout=300
    )
    return python
