"""The voice's Whisper states of a file, computed from `analysis.requested` while the transcriber works, and
kept in memory until the job's `transcript.ready` asks for them.

The states need no utterances, so computing them beside the transcription takes them off the job's
critical path. Both topics are read by one consumer: with equal partition counts and job-id keys, a
job's two events land on the same partition number, which the group's assignment gives to the same
member, so the transcript finds its states here. Where it does not (another replica, a restart, a file
over the budget) the states are computed again: the cache is only ever a shortcut.
"""

import uuid
from collections import OrderedDict

from shared.speech_pass import FileStates

Key = tuple[uuid.UUID, int]
_REMEMBERED_DONE = 1024


class StatesCache:
    """States by (job, attempt), at most `budget_bytes` in all; the oldest go first."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[Key, FileStates] = OrderedDict()
        self._done: OrderedDict[Key, None] = OrderedDict()

    @property
    def size_bytes(self) -> int:
        return sum(states.nbytes for states in self._states.values())

    def fits(self, nbytes: int) -> bool:
        """Whether states of this size could be kept at all: larger ones are not worth computing ahead."""
        return nbytes <= self.budget_bytes

    def wanted(self, key: Key) -> bool:
        """Whether states for this job are still worth computing (its transcript has not been handled)."""
        return key not in self._done and key not in self._states

    def put(self, key: Key, states: FileStates) -> bool:
        """Keep the states unless they alone exceed the budget; False when they were not kept."""
        if not self.fits(states.nbytes) or not self.wanted(key):
            return False
        while self._states and self.size_bytes + states.nbytes > self.budget_bytes:
            self._states.popitem(last=False)
        self._states[key] = states
        return True

    def take(self, key: Key) -> FileStates | None:
        """The job's states, if kept, removing them; the job is remembered as done either way."""
        self._done[key] = None
        while len(self._done) > _REMEMBERED_DONE:
            self._done.popitem(last=False)
        return self._states.pop(key, None)
