"""The README's Python client example, as a user runs it: the client installed on its own into a fresh
virtual environment (pydantic and httpx, nothing of the server), the ten lines run against the whole stack
on a real talking clip."""

import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Final

import pytest

from devstack import LocalStack, ServiceName
from tests.client_env import REPO_ROOT, install_client
from tests.media_factory import MediaSet

pytestmark = pytest.mark.e2e

README: Final = REPO_ROOT / "README.md"
PRINTED: Final = re.compile(r"^ *\d+\.\d\ds  (anger|disgust|fear|joy|neutral|sadness|surprise) +0\.\d\d  .*$")


def readme_client_example() -> str:
    """The first Python block after the README's "### Python client" heading."""
    section = README.read_text().split("### Python client", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_client_example_runs_from_a_fresh_install(
    full_stack: LocalStack, media: MediaSet, tmp_path: Path
) -> None:
    example = readme_client_example()
    assert len([line for line in example.splitlines() if line.strip()]) == 10
    gateway = full_stack.service_url(ServiceName.GATEWAY)
    # The README's server and address, as a reader would change them for theirs.
    script = example.replace("http://127.0.0.1:8000", gateway).replace(
        "ada@example.com", f"ada-{uuid.uuid4().hex[:8]}@example.com"
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "example.py").write_text(script)
    shutil.copy(media.speech_mp4, work / "talk.mp4")
    python = install_client(tmp_path / "client")

    run = subprocess.run(
        [str(python), "-I", "example.py"], cwd=work, capture_output=True, text=True, timeout=600, check=False
    )

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2, run.stdout  # the clip's two sentences
    assert all(PRINTED.match(line) for line in lines), run.stdout
