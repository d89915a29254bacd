"""The client installs on its own: into a fresh virtual environment, from its wheel and the contract's, with
pydantic and httpx (and what they need) from the package index, and nothing of the server."""

import json
import subprocess
from pathlib import Path
from typing import Final

import pytest

from tests.client_env import install_client

OURS: Final = {"emotion-analyzer-contract", "emotion-analyzer-client"}
# A fresh environment's own tools, which pip may put there beside what was asked for.
TOOLS: Final = {"pip", "setuptools", "wheel"}

# Run inside the fresh environment: what is installed, and what pydantic and httpx require (transitively,
# their extras left out), by the installed packages' own metadata.
CLOSURE: Final = """
import json
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement  # the fresh environment's one copy of packaging

def canonical(name):
    return name.lower().replace("_", "-")

def needs(dist):
    for line in metadata.requires(dist) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            yield canonical(requirement.name)

seen, todo = set(), ["pydantic", "httpx"]
while todo:
    dist = todo.pop()
    if dist not in seen:
        seen.add(dist)
        todo.extend(needs(dist))
installed = sorted(canonical(d.metadata["Name"]) for d in metadata.distributions())
print(json.dumps({"installed": installed, "closure": sorted(seen)}))
"""

USE: Final = """
import sys
from emotion_analyzer import EmotionAnalyzer, verify_webhook
from emotion_analyzer.models import Analysis, FailureCode, Stage, UsageReport
analysis = Analysis.model_validate_json(sys.stdin.read())
assert analysis.done and analysis.result is not None
top = analysis.result.utterances[0].emotions[0]
server = ("numpy", "fastapi", "sqlalchemy", "shared", "services")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in server)
print(top.label.value, top.confidence, FailureCode.NO_AUDIO_TRACK.value, heavy)
"""

ANALYSIS: Final = {
    "id": "6f1c2a0e-5b1d-4c11-9a55-0a6c2f3e8b71",
    "status": "completed",
    "stage": "fuse",
    "filename": "talk.mp4",
    "size_bytes": 1024,
    "created_at": "2026-12-03T10:00:00Z",
    "updated_at": "2026-12-03T10:00:09Z",
    "completed_at": "2026-12-03T10:00:09Z",
    "attempt": 1,
    "result": {
        "model_version": "default-1",
        "duration_s": 2.5,
        "utterances": [
            {
                "index": 0,
                "start_time": 0.0,
                "end_time": 2.5,
                "text": "I can't believe it!",
                "emotions": [
                    {"label": "surprise", "confidence": 0.55},
                    {"label": "joy", "confidence": 0.2},
                    {"label": "neutral", "confidence": 0.1},
                    {"label": "anger", "confidence": 0.05},
                    {"label": "fear", "confidence": 0.05},
                    {"label": "sadness", "confidence": 0.03},
                    {"label": "disgust", "confidence": 0.02},
                ],
                "sentiments": [
                    {"label": "positive", "confidence": 0.6},
                    {"label": "neutral", "confidence": 0.3},
                    {"label": "negative", "confidence": 0.1},
                ],
            }
        ],
    },
}


@pytest.fixture(scope="module")
def fresh_client_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_client(tmp_path_factory.mktemp("client-env"))


def test_the_client_installs_with_pydantic_and_httpx_alone(fresh_client_env: Path) -> None:
    found = json.loads(
        subprocess.run(
            [str(fresh_client_env), "-I", "-c", CLOSURE], capture_output=True, text=True, check=True
        ).stdout
    )
    assert set(found["installed"]) >= OURS
    assert {"pydantic", "httpx"} <= set(found["closure"])
    assert set(found["installed"]) - OURS - TOOLS == set(found["closure"])


def test_the_installed_client_reads_an_analysis_without_server_code(fresh_client_env: Path) -> None:
    run = subprocess.run(
        [str(fresh_client_env), "-I", "-c", USE],
        input=json.dumps(ANALYSIS),
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["surprise", "0.55", "no_audio_track", "[]"]
