"""The REST API's request bodies (their limits are the gateway's policy), and the answers built from rows.

The answers themselves are the contract's (`emotion_contract.analyses`), the very models the client reads.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emotion_contract.analyses import Analysis, AnalysisCallback, AnalysisError, AnalysisStatus
from emotion_contract.labels import SpeakerCount
from shared.db.models import Job
from shared.db.webhook_models import WebhookSubscription

from .media_types import CONTENT_TYPE_PATTERN, FILENAME_PATTERN, SUPPORTED_EXTENSIONS
from .webhooks.targets import MAX_URL_LENGTH


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


class AnalysisCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(
        default=None, min_length=1, max_length=1024, description="The key POST /v1/upload-url returned"
    )
    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Instead of `key`: an http(s) URL of the video or audio file on a public host, which "
        "the service fetches itself (no web pages; the same size and duration limits as an upload)",
        examples=["https://example.com/media/interview.mp4"],
    )
    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where to POST this analysis' completion or failure: an http(s) URL of a public host, "
        "signed and retried like a webhook (the secret is in the answer's `callback`)",
        examples=["https://example.com/hooks/analysis-done"],
    )
    speakers: SpeakerCount | None = Field(
        default=None,
        description="How many people speak in the file, when you know: the utterances are split among that "
        "many voices instead of an estimated number",
        examples=[2],
    )

    @model_validator(mode="after")
    def _one_source(self) -> "AnalysisCreate":
        if (self.key is None) == (self.url is None):
            raise ValueError("give the uploaded file's `key` or the file's `url`, one of the two")
        return self


def callback_of(subscription: WebhookSubscription) -> AnalysisCallback:
    return AnalysisCallback(webhook_id=subscription.id, url=subscription.url, secret=subscription.secret)


def analysis_of(job: Job, *, with_result: bool = True) -> Analysis:
    error = None
    if job.status is AnalysisStatus.FAILED:
        error = AnalysisError(
            code=job.error_code or "unknown",
            stage=job.stage,
            message=job.error_reason or "unknown failure",
        )
    return Analysis(
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
        speakers=job.speakers,
        result=job.analysis_result() if with_result else None,
    )
