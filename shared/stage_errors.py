"""Which failures end a job (with a stable code and a readable reason) and which are retried.

A consumer that meets a transient failure (the object store or the broker unreachable) lets the event be
redelivered; anything else ends the job as `failed` instead of redelivering a poison event forever.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import urllib3
from pydantic import BaseModel

from shared.storage import ObjectNotFoundError

TRANSIENT: Final = (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError)
INTERNAL_ERROR_REASON: Final = "an internal error stopped the analysis; it has been logged for the operators"


class Failure(BaseModel):
    code: str
    reason: str
    measured_s: float | None = None
    """The file's measured seconds where the stage had begun work on it (see `after_work`)."""


class AfterWork(Exception):
    """A failure once the stage had checked the file and begun work on it (its cause is the failure): the
    work is spent, so the job keeps its charge, for the file's `measured_s`."""

    def __init__(self, measured_s: float) -> None:
        super().__init__(f"failed after work on {measured_s:g} s of media")
        self.measured_s = measured_s


@contextmanager
def after_work(measured_s: float) -> Iterator[None]:
    """Whatever fails in the block fails after work on a file of `measured_s` seconds."""
    try:
        yield
    except Exception as exc:
        raise AfterWork(measured_s) from exc


def classify(exc: BaseException) -> Failure | None:
    """The failure to report for `exc`, or None when it is transient and the event should be redelivered."""
    if isinstance(exc, AfterWork) and exc.__cause__ is not None:
        failure = classify(exc.__cause__)
        return None if failure is None else failure.model_copy(update={"measured_s": exc.measured_s})
    if isinstance(exc, TRANSIENT):
        return None
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code and not isinstance(exc, OSError):
        return Failure(code=code, reason=str(exc))
    if isinstance(exc, ObjectNotFoundError):
        return Failure(code="upload_missing", reason="the uploaded file is no longer in the object store")
    # The exception's text is for the operators' logs (run_stage logs it with the job's id), not for the
    # tenant: it can name files, hosts and internals.
    return Failure(code="internal_error", reason=INTERNAL_ERROR_REASON)
