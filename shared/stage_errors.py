"""Which failures end a job (with a stable code and a readable reason) and which are retried.

A consumer that meets a transient failure (the object store or the broker unreachable) lets the event be
redelivered; anything else ends the job as `failed` instead of redelivering a poison event forever.
"""

from typing import Final

import urllib3
from pydantic import BaseModel

from shared.storage import ObjectNotFoundError

TRANSIENT: Final = (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError)
INTERNAL_ERROR_REASON: Final = "an internal error stopped the analysis; it has been logged for the operators"


class Failure(BaseModel):
    code: str
    reason: str


def classify(exc: BaseException) -> Failure | None:
    """The failure to report for `exc`, or None when it is transient and the event should be redelivered."""
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
