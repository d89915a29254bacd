"""Large events travel by reference: the claim-check pattern.

A 12-minute talk made an 871 KB `analysis.completed`, about 3.9 KB an utterance: an hour of dense speech
passes the broker's 4 MiB message limit, and the service allows three. So an event whose JSON is larger
than `threshold_bytes` is written to the object store, and the message carries only a ticket: where the
body is, its size and its SHA-256. Every consumer's decoder (`subscriber_options`) fetches the body,
checks the digest and hands the handler the event as if it had come whole. Small events go as before.

The bodies live under `_payloads/<job id>/`, so deleting an analysis deletes them with it; the rest are
removed after the topics' retention (`expire_claims`).
"""

import asyncio
import hashlib
import inspect
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from faststream.kafka import KafkaBroker
from pydantic import BaseModel, Field, ValidationError

from emotion_contract.events import Event
from shared.storage import ObjectNotFoundError, ObjectStore

PREFIX: Final = "_payloads"
ENVELOPE_KEY: Final = "claim_check"
# The longest any topic keeps its messages (deploy/k8s/infra/kafka-topics.yaml): a ticket older than that
# can no longer be delivered, so its body can go.
RETENTION: Final = timedelta(days=14)
# The largest body a ticket may name: three hours of dense speech make a few MB.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


class ClaimTicket(BaseModel):
    bucket: str
    key: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class UnreadableMessage(ValueError):
    """A message that can never be read as an event, however often it is delivered: it is dead-lettered
    (`shared.poison`), never redelivered."""

    code = "event_unreadable"


class ClaimCheckError(UnreadableMessage):
    """A ticket's body is missing, is not what the ticket says, or the ticket points outside its job's
    bodies or past the size a body may have."""

    code = "payload_unreadable"


def job_prefix(job_id: object) -> str:
    return f"{PREFIX}/{job_id}/"


class ClaimCheck:
    def __init__(
        self, store: ObjectStore, bucket: str, threshold_bytes: int, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.threshold_bytes = threshold_bytes
        self.max_body_bytes = max_body_bytes

    def message(self, event: Event) -> Event | dict[str, Any]:
        """What to publish for `event`: itself, or a ticket to its body once that is stored."""
        body = event.model_dump_json().encode()
        if len(body) <= self.threshold_bytes:
            return event
        ticket = ClaimTicket(
            bucket=self.bucket,
            key=f"{job_prefix(event.job_id)}{event.TOPIC.value}/{event.event_id}.json",
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
        )
        self.store.put_bytes(ticket.bucket, ticket.key, body, "application/json")
        return {
            ENVELOPE_KEY: ticket.model_dump(),
            "job_id": str(event.job_id),
            "attempt": event.attempt,
            "schema_version": event.schema_version,
        }

    async def publish(self, broker: KafkaBroker, event: Event) -> None:
        message = await asyncio.to_thread(self.message, event)
        await broker.publish(message, topic=event.TOPIC.value, key=event.key)

    def redeem(self, ticket: ClaimTicket, job_id: object | None = None) -> Any:
        """The body a ticket stands for, checked against its size and digest, and (given the envelope's
        `job_id`) that it is one of that job's bodies in this bucket: a ticket is never a way to read
        another job's data, or a file of any size."""
        if job_id is not None and (
            ticket.bucket != self.bucket or not ticket.key.startswith(job_prefix(job_id))
        ):
            raise ClaimCheckError(f"the ticket points outside its job's bodies: {ticket.bucket}/{ticket.key}")
        if ticket.size > self.max_body_bytes:
            raise ClaimCheckError(f"the ticket's body of {ticket.size} bytes is over {self.max_body_bytes}")
        try:
            body = self.store.read_head(ticket.bucket, ticket.key, ticket.size + 1)
        except ObjectNotFoundError as exc:
            raise ClaimCheckError(f"the event's body {ticket.key} is no longer stored") from exc
        if len(body) != ticket.size or hashlib.sha256(body).hexdigest() != ticket.sha256:
            raise ClaimCheckError(f"the event's body {ticket.key} is not the one its ticket names")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ClaimCheckError(f"the event's body {ticket.key} is not JSON") from exc

    async def decode(self, message: Any, original_decoder: Callable[[Any], Any]) -> Any:
        """FastStream's decoder hook: a ticket becomes the event it stands for; anything else is decoded
        as usual. What can never be read raises UnreadableMessage; the object store out of reach stays a
        transient error (the message is delivered again)."""
        try:
            decoded = original_decoder(message)
            if inspect.isawaitable(decoded):
                decoded = await decoded
        except ValueError as exc:  # JSON and UTF-8 errors are ValueErrors
            raise UnreadableMessage(f"the message is not JSON: {exc}") from exc
        if isinstance(decoded, dict) and ENVELOPE_KEY in decoded:
            try:
                ticket = ClaimTicket.model_validate(decoded[ENVELOPE_KEY])
                job_id = uuid.UUID(str(decoded["job_id"]))
            except (ValidationError, KeyError, ValueError) as exc:
                raise ClaimCheckError(f"the claim ticket is malformed: {exc}") from exc
            return await asyncio.to_thread(self.redeem, ticket, job_id)
        return decoded


def forget_job(store: ObjectStore, bucket: str, job_id: object) -> int:
    """Remove every body stored for the job (its analysis is deleted); how many."""
    keys = store.list_keys(bucket, job_prefix(job_id))
    for key in keys:
        store.remove(bucket, key)
    return len(keys)


def expire_claims(store: ObjectStore, bucket: str, older_than: timedelta = RETENTION) -> list[str]:
    """Remove the bodies whose tickets the broker no longer keeps; their keys."""
    return store.remove_older_than(bucket, f"{PREFIX}/", older_than)
