"""The state file of a running stack (`<root>/state.json`): enough for another process to find and stop it."""

import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from devstack.config import StackConfig
from devstack.processes import ProcessRecord, is_running


class StateFileError(RuntimeError):
    """The state file exists but cannot be read as a stack's state."""


class StackState(BaseModel):
    config: StackConfig
    processes: list[ProcessRecord] = Field(description="In start order; stopped in reverse")
    endpoints: dict[str, str]
    env: dict[str, str] = Field(description="EA_* variables that point a service at this stack")
    startup_seconds: dict[str, float] = Field(
        description="Seconds from the stack's start until each was ready"
    )
    started_at: datetime

    def running(self) -> list[ProcessRecord]:
        return [record for record in self.processes if is_running(record)]

    def all_running(self) -> bool:
        return len(self.running()) == len(self.processes)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.tmp")
        partial.write_text(self.model_dump_json(indent=2))
        os.replace(partial, path)  # readers never see half a file

    @classmethod
    def read(cls, path: Path) -> "StackState | None":
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise StateFileError(
                f"{path} is not a stack state file ({exc.error_count()} errors); remove it"
            ) from exc
