"""The git hooks `make hooks` installs: a valid pre-commit configuration and the commit message's rules."""

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.check_commit_message import MAX_SUBJECT, main, problems

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_pre_commit_configuration_is_valid() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_short_subject_and_a_body_pass() -> None:
    assert problems("Fusion reads its parts in one query\n\nWhy: two round trips per job.\n") == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("x" * (MAX_SUBJECT + 1) + "\n\nbody\n", "more than 72"),
        ("Fix the sweeper\n", "no body"),
        ("Fix the sweeper\nbody on the second line\n", "no body"),
        ("Fix the sweeper.\n\nbody\n", "full stop"),
        ("\n\n# only git's comments\n", "empty"),
    ],
)
def test_a_message_that_breaks_a_rule_is_refused(message: str, expected: str) -> None:
    assert any(expected in problem for problem in problems(message))


def test_the_subject_may_be_exactly_72_characters() -> None:
    assert problems("x" * MAX_SUBJECT + "\n\nbody\n") == []


def test_git_comments_below_the_message_do_not_count_as_a_body() -> None:
    assert problems("Fix the sweeper\n\n# Please enter the commit message\n") != []


def test_the_hook_exits_1_with_the_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = tmp_path / "COMMIT_EDITMSG"
    message.write_text("Fix the sweeper\n")
    assert main(["check_commit_message.py", str(message)]) == 1
    assert "no body" in capsys.readouterr().err
    message.write_text("Fix the sweeper\n\nIt re-drove jobs too early.\n")
    assert main(["check_commit_message.py", str(message)]) == 0
