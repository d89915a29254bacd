"""The REST API's request and response bodies."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db.models import Job, JobStatus
from shared.events import Stage
from shared.results import AnalysisResult

from .media_types import CONTENT_TYPE_PATTERN, FILENAME_PATTERN, SUPPORTED_EXTENSIONS


class UploadUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The patterns are documentation, not validation: a file of a type the pipeline cannot read is a 415.
    filename: str = Field(
        min_length=1,
        max_length=1024,
        description=f"Ends in a supported extension: {', '.join(sorted(SUPPORTED_EXTENSIONS))} (any case)",
        examples=["interview.mp4"],
        json_schema_extra={"pattern": FILENAME_PATTERN},
    )
    content_type: str | None = Field(
        default=None,
        max_length=255,
        description="A video/*, audio/* or application/octet-stream type",
        examples=["video/mp4"],
        json_schema_extra={"pattern": CONTENT_TYPE_PATTERN},
    )


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


class AnalysisCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=1024, description="The key POST /v1/upload-url returned")


class AnalysisError(BaseModel):
    code: str = Field(examples=["no_audio_track"])
    stage: Stage | None
    message: str


class Analysis(BaseModel):
    id: uuid.UUID
    status: JobStatus
    stage: Stage | None = Field(description="The stage the job is in, or failed in")
    error: AnalysisError | None = None
    filename: str
    size_bytes: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    attempt: int
    result: AnalysisResult | None = None

    @classmethod
    def from_job(cls, job: Job, *, with_result: bool = True) -> "Analysis":
        error = None
        if job.status is JobStatus.FAILED:
            error = AnalysisError(
                code=job.error_code or "unknown",
                stage=job.stage,
                message=job.error_reason or "unknown failure",
            )
        return cls(
            id=job.id,
            status=job.status,
            stage=job.stage,
            error=error,
            filename=job.filename,
            size_bytes=job.size_bytes,
            created_at=job.created_at,
            updated_at=job.updated_at,
            completed_at=job.completed_at,
            attempt=job.attempt,
            result=job.analysis_result() if with_result else None,
        )


class AnalysisList(BaseModel):
    items: list[Analysis] = Field(description="Newest first, without results")
    total: int
    limit: int
    offset: int
