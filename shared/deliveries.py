"""How many times a consumer group was handed each event, kept where a crash cannot lose the count.

A handler that fails on an event again and again (a transient error that never heals, or a file that gets
the worker OOM-killed half-way) would have it redelivered for ever, and the partition it sits on would
stall for every job behind it. So each delivery is counted before the work starts, in the object store
(the one state every worker already reaches; the encoders have no database), and past `max_deliveries`
the event is dead-lettered and its job failed instead of being tried again. A handled event's count is
removed. One group member owns a partition at a time, so the read-then-write of a count does not race.
"""

import json
from dataclasses import dataclass

from shared.storage import ObjectNotFoundError, ObjectStore

PREFIX = "_deliveries"


@dataclass(frozen=True)
class Delivery:
    number: int
    last_error: str | None


class DeliveryLedger:
    def __init__(self, store: ObjectStore, bucket: str, consumer: str, max_deliveries: int) -> None:
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {max_deliveries}")
        self.store = store
        self.bucket = bucket
        self.consumer = consumer
        self.max_deliveries = max_deliveries

    def _key(self, event_id: object) -> str:
        return f"{PREFIX}/{self.consumer}/{event_id}.json"

    def begin(self, event_id: object) -> Delivery:
        """Count one more delivery of the event; this one's number and the error the last one ended in."""
        previous = self._read(event_id)
        delivery = Delivery(number=previous.number + 1, last_error=previous.last_error)
        self._write(event_id, delivery)
        return delivery

    def failed(self, event_id: object, delivery: Delivery, error: str) -> None:
        """Remember why this delivery failed, for the dead letter."""
        self._write(event_id, Delivery(number=delivery.number, last_error=error[:2000]))

    def done(self, event_id: object) -> None:
        self.store.remove(self.bucket, self._key(event_id))

    def exhausted(self, delivery: Delivery) -> bool:
        return delivery.number > self.max_deliveries

    def _read(self, event_id: object) -> Delivery:
        try:
            raw = self.store.read_head(self.bucket, self._key(event_id), 64 * 1024)
        except ObjectNotFoundError:
            return Delivery(number=0, last_error=None)
        data = json.loads(raw)
        return Delivery(number=int(data["number"]), last_error=data.get("last_error"))

    def _write(self, event_id: object, delivery: Delivery) -> None:
        body = json.dumps({"number": delivery.number, "last_error": delivery.last_error}).encode()
        self.store.put_bytes(self.bucket, self._key(event_id), body, "application/json")
