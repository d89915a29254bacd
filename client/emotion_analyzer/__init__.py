"""The Python client of the Multimodal Emotion Analyzer's REST API.

    from emotion_analyzer import EmotionAnalyzer

    with EmotionAnalyzer("http://127.0.0.1:8000", api_key="ea_…") as api:
        analysis = api.wait(api.analyze_file("talk.mp4").id)
        for utterance in analysis.result.utterances:
            print(utterance.text, utterance.emotions[0].label)

It needs httpx and the contract (`emotion_contract`, pydantic alone), whose models are the very ones the
server answers with; it never imports server code. The command line that drives it (`analyzer.remote`)
lives in the server's application package.
"""

from .async_client import AsyncEmotionAnalyzer
from .client import EmotionAnalyzer
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    UploadFailed,
    WaitTimeout,
)
from .models import Analysis, AnalysisResult, AnalysisStatus
from .webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "Analysis",
    "AnalysisResult",
    "AnalysisStatus",
    "ApiError",
    "AsyncEmotionAnalyzer",
    "BadRequest",
    "Conflict",
    "EmotionAnalyzer",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadFailed",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
