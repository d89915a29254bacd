"""The commit-msg hook: a subject of at most 72 characters, then a blank line and a body that says why.

Usage: python scripts/check_commit_message.py FILE (git passes the message's file). Exits 1 with the
reasons when the message breaks a rule. Merge and fixup messages git writes itself are let through.
"""

import sys
from pathlib import Path
from typing import Final

MAX_SUBJECT: Final = 72
GENERATED: Final = ("Merge ", "Revert ", "fixup! ", "squash! ", "amend! ")


def problems(message: str) -> list[str]:
    lines = [line for line in message.splitlines() if not line.startswith("#")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or not lines[0].strip():
        return ["the message is empty"]
    subject = lines[0]
    if subject.startswith(GENERATED):
        return []
    found = []
    if len(subject) > MAX_SUBJECT:
        found.append(f"the subject is {len(subject)} characters, more than {MAX_SUBJECT}")
    if subject.endswith("."):
        found.append("the subject ends with a full stop")
    if len(lines) < 3 or lines[1].strip():
        found.append("no body: a blank line after the subject, then why and what the change changes")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_commit_message.py COMMIT_MESSAGE_FILE", file=sys.stderr)
        return 2
    found = problems(Path(argv[1]).read_text(encoding="utf-8"))
    for problem in found:
        print(f"commit message: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
