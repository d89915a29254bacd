"""Messages no consumer can read are dead-lettered once, never redelivered for ever.

Before this, a message that failed to decode (bad JSON, a claim ticket whose body was deleted with its
analysis or points outside its job, a body that is no event of its topic) was NACKed and delivered again
and again, stalling its partition for every job behind it. A broker middleware now sees the error the
decoding raised, hands the consumer a `Poisoned` report (where the message was, its job and attempt where
they can be read, the failure code and reason) to dead-letter it and fail its job, and acknowledges the
message. Errors of the handlers themselves, and transient ones (the object store out of reach while a
ticket is redeemed), pass through untouched: they are redelivered as before.
"""

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from faststream import BaseMiddleware
from pydantic import ValidationError

from emotion_contract.errors import FailureCode
from shared.claim_check import UnreadableMessage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Poisoned:
    topic: str
    partition: int | None
    offset: int | None
    job_id: uuid.UUID | None
    """From the message's key, or its body where it can be read; None when neither names a job."""
    attempt: int | None
    message_id: uuid.UUID | None
    code: str
    reason: str


def poisoned(record: Any, error: BaseException) -> Poisoned | None:
    """The report of a message that `error` says can never be read; None for any other error."""
    if isinstance(error, UnreadableMessage):
        code, reason = error.code, str(error)
    elif isinstance(error, ValidationError):  # a body that is no event of the handler's types
        code, reason = FailureCode.EVENT_UNREADABLE.value, _without_values(error)
    else:
        return None
    body = _loose_body(getattr(record, "value", None))
    return Poisoned(
        topic=str(getattr(record, "topic", "")),
        partition=_int(getattr(record, "partition", None)),
        offset=_int(getattr(record, "offset", None)),
        job_id=_uuid(getattr(record, "key", None)) or _uuid(body.get("job_id")),
        attempt=attempt if isinstance(attempt := body.get("attempt"), int) and attempt >= 1 else None,
        message_id=_uuid(body.get("event_id")),
        code=code,
        reason=reason[:2000],
    )


def poison_middleware(on_poison: Callable[[Poisoned], Awaitable[None]]) -> type[BaseMiddleware]:
    """A broker middleware that passes every unreadable message to `on_poison` and then acknowledges it."""

    class PoisonMiddleware(BaseMiddleware):
        async def after_processed(
            self,
            exc_type: type[BaseException] | None = None,
            exc_val: BaseException | None = None,
            exc_tb: TracebackType | None = None,
        ) -> bool | None:
            if exc_val is None or (report := poisoned(self.msg, exc_val)) is None:
                return False
            logger.error(
                "unreadable message at %s[%s]@%s (job %s): %s",
                report.topic,
                report.partition,
                report.offset,
                report.job_id,
                report.reason,
            )
            await on_poison(report)
            return True  # handled: the message is acknowledged, not delivered again

    return PoisonMiddleware


def _without_values(error: ValidationError) -> str:
    """What did not validate, and how, never the values themselves (they may be a transcript)."""
    problems = {
        f"{'.'.join(str(part) for part in e['loc'])}: {e['type']}"
        for e in error.errors(include_url=False, include_input=False, include_context=False)
    }
    return f"not an event of the topic ({'; '.join(sorted(problems))})"


def _loose_body(value: object) -> dict[str, Any]:
    try:
        body = json.loads(value) if isinstance(value, bytes | str) else None
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.decode() if isinstance(value, bytes) else str(value)) if value else None
    except (ValueError, UnicodeDecodeError):
        return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
