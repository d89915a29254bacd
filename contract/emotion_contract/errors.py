"""The one error body of every HTTP answer, and the codes a failed analysis may carry.

An HTTP error is `{"error": {"code", "message"}}` with a stable code (the gateway and auth both answer so);
a failed analysis has `error.code`, one of `FailureCode`, in its body, its webhook and its Kafka event.
"""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code", examples=["analysis_not_found"])
    message: str = Field(description="Human-readable explanation", examples=["no analysis has this id"])
    details: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems (validation)")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class FailureCode(StrEnum):
    """Why an analysis failed. The file's own problems come first; the rest are the system's."""

    EMPTY_FILE = "empty_file"
    NOT_MEDIA = "not_media"
    CORRUPT_MEDIA = "corrupt_media"
    NO_AUDIO_TRACK = "no_audio_track"
    TOO_LONG = "too_long"
    MEDIA_OVER_LIMITS = "media_over_limits"
    UPLOAD_MISSING = "upload_missing"
    """The uploaded file left the object store before the analysis read it."""
    QUEUE_UNAVAILABLE = "queue_unavailable"
    """The analysis queue did not take the job; sending its key again queues it without a new upload."""
    TIMEOUT = "timeout"
    """A stage did not finish in time, after the re-drives."""
    DELIVERY_FAILED = "delivery_failed"
    """A stage's event failed every delivery (it is in `analysis.dead_letter`)."""
    PAYLOAD_UNREADABLE = "payload_unreadable"
    """An event's body, kept in the object store, was missing or damaged, or its ticket pointed elsewhere."""
    EVENT_UNREADABLE = "event_unreadable"
    """A message of the job's pipeline could not be read as its event (it is in `analysis.dead_letter`)."""
    INTERNAL_ERROR = "internal_error"
