"""The project's lower bounds leave out the releases with known advisories of the parsers that read what
clients send, and what is installed honours them."""

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# The first release past the last advisory of each (the header and form parser of every upload).
FIXED = {"python-multipart": Version("0.0.31")}


def test_floors_exclude_the_releases_with_known_advisories() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = {r.name: r for r in map(Requirement, dependencies)}
    for name, fixed in FIXED.items():
        floors = [
            Version(s.version) for s in requirements[name].specifier if s.operator in (">=", "==", "~=")
        ]
        assert floors and min(floors) >= fixed, (
            f"{name}: {requirements[name].specifier} admits releases before {fixed}"
        )
        assert Version(version(name)) >= fixed
