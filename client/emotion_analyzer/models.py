"""The API's bodies as the client reads them: the contract's own models (`emotion_contract`), the very
classes the gateway serves, gathered here so that a user imports them from one place.

Unknown fields are ignored (pydantic's default), so a newer server does not break an older client.
"""

from emotion_contract.accounts import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    Limits,
    Registration,
    SessionToken,
    User,
)
from emotion_contract.analyses import (
    Analysis,
    AnalysisError,
    AnalysisList,
    AnalysisStatus,
    Meter,
    UploadUrl,
    UsageReport,
)
from emotion_contract.errors import ErrorResponse, FailureCode
from emotion_contract.events import Stage
from emotion_contract.labels import Emotion, Modality, Sentiment
from emotion_contract.results import AnalysisResult, EmotionScore, SentimentScore, UtteranceResult
from emotion_contract.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryList,
    DeliveryQueued,
    DeliveryStatus,
    Webhook,
    WebhookCreated,
    WebhookEventType,
    WebhookList,
    WebhookPayload,
)

__all__ = [
    "Analysis",
    "AnalysisError",
    "AnalysisList",
    "AnalysisResult",
    "AnalysisStatus",
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyList",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryList",
    "DeliveryQueued",
    "DeliveryStatus",
    "Emotion",
    "EmotionScore",
    "ErrorResponse",
    "FailureCode",
    "Limits",
    "Meter",
    "Modality",
    "Registration",
    "Sentiment",
    "SentimentScore",
    "SessionToken",
    "Stage",
    "UploadUrl",
    "UsageReport",
    "User",
    "UtteranceResult",
    "Webhook",
    "WebhookCreated",
    "WebhookEventType",
    "WebhookList",
    "WebhookPayload",
]
