"""Which errors mean a message can never be read, and what its dead letter may say of it."""

import uuid
from types import SimpleNamespace

from pydantic import ValidationError

from emotion_contract.events import AnalysisRequested
from shared.claim_check import ClaimCheckError
from shared.poison import poisoned


def _record(value: bytes, key: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(topic="analysis.requested", partition=3, offset=17, key=key, value=value)


def test_a_body_that_is_no_event_is_reported_without_its_values() -> None:
    job = uuid.uuid4()
    body = b'{"job_id": "%s", "attempt": 2, "bucket": "a private transcript"}' % str(job).encode()
    try:
        AnalysisRequested.model_validate_json(body.replace(b'"a private transcript"', b"5"))
    except ValidationError as error:
        report = poisoned(_record(body, None), error)
    assert report is not None
    assert (report.job_id, report.attempt, report.partition, report.offset) == (job, 2, 3, 17)
    assert report.code == "event_unreadable" and "bucket: string_type" in report.reason
    assert "5" not in report.reason.replace("string_type", "") and "private" not in report.reason


def test_the_key_names_the_job_when_the_body_cannot_be_read() -> None:
    job = uuid.uuid4()
    report = poisoned(_record(b"\xff\xfe", str(job).encode()), ClaimCheckError("its body is gone"))
    assert report is not None and (report.job_id, report.attempt, report.code) == (
        job,
        None,
        "payload_unreadable",
    )
    nameless = poisoned(_record(b"[]", b"not-a-uuid"), ClaimCheckError("x"))
    assert nameless is not None and nameless.job_id is None


def test_any_other_error_is_the_handlers_and_passes_through() -> None:
    assert poisoned(_record(b"{}", None), ConnectionError("the store is unreachable")) is None
    assert poisoned(_record(b"{}", None), RuntimeError("a bug")) is None
