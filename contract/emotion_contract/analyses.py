"""The REST API's analysis, upload and usage bodies, as the gateway serves them and the client reads them.

Requests are validated by the gateway's own models (their limits are its policy); these are the answers.
Unknown fields are ignored when reading, so a newer server does not break an older client.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult


class AnalysisStatus(StrEnum):
    """queued → processing → completed | failed (a re-driven job goes back to queued)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (AnalysisStatus.COMPLETED, AnalysisStatus.FAILED)


class AnalysisError(BaseModel):
    code: str = Field(description="Stable machine-readable code (`FailureCode`)", examples=["no_audio_track"])
    stage: Stage | None
    message: str


class AnalysisCallback(BaseModel):
    """The webhook an analysis was created with (`callback_url`): its completion or failure is POSTed
    there, signed with `secret` and retried exactly like a subscribed webhook's."""

    webhook_id: uuid.UUID = Field(description="Its deliveries: GET /v1/webhooks/{webhook_id}/deliveries")
    url: str
    secret: str = Field(description="The `whsec_…` signing secret, shown only in the answer that created it")


class Analysis(BaseModel):
    id: uuid.UUID
    status: AnalysisStatus
    stage: Stage | None = Field(description="The stage the job is in, or failed in")
    error: AnalysisError | None = None
    filename: str
    size_bytes: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    attempt: int
    speakers: int | None = Field(
        default=None, description="How many people the request said speak in the file; None: estimated"
    )
    result: AnalysisResult | None = Field(default=None, description="Once completed; never in lists")
    callback: AnalysisCallback | None = Field(
        default=None, description="Only in the answer that created the analysis with a `callback_url`"
    )

    @property
    def done(self) -> bool:
        return self.status.is_terminal


class AnalysisList(BaseModel):
    items: list[Analysis] = Field(description="Newest first, without results")
    total: int
    limit: int
    offset: int


class UploadUrl(BaseModel):
    """An upload straight to the object store (S3's POST Object): POST `upload_url` a multipart/form-data
    body with every entry of `fields`, then the file as the last part, named `file`. The signed policy
    admits only this key and 1 to `max_bytes` bytes, until `expires_at`."""

    key: str = Field(description="Pass this to POST /v1/analyses once the file is uploaded")
    upload_url: str = Field(description="Where to POST the form")
    method: Literal["POST"] = "POST"
    fields: dict[str, str] = Field(description="Form fields to send, as they are, before the file")
    expires_at: datetime
    max_bytes: int = Field(description="Largest file an analysis accepts")


class Meter(BaseModel):
    used: float
    limit: float
    remaining: float


class UsageReport(BaseModel):
    period_start: date = Field(description="First day of the current month (UTC)")
    resets_at: datetime = Field(description="When this month's usage returns to zero")
    analyses: Meter = Field(description="Analyses created this month; a failed one is given back")
    video_seconds: Meter = Field(description="Seconds of video or audio analysed this month")
