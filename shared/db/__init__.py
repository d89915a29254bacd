"""PostgreSQL state every service finds in one place: the tables, their migrations and the sessions.

The functions that read and change the tables live with the one service that uses them
(`services.gateway.db`, `services.fusion.parts`, `services.auth.repository`).
"""

from shared.db.account_models import ApiKey, AuthSession, UserAccount
from shared.db.models import (
    FusionPart,
    Job,
    JobBase,
    JobCreate,
    KafkaOutboxEvent,
    UploadGrant,
    UtteranceRecord,
)
from shared.db.session import create_engine, ensure_database, session_factory
from shared.db.webhook_models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

__all__ = [
    "ApiKey",
    "AuthSession",
    "FusionPart",
    "Job",
    "JobBase",
    "JobCreate",
    "KafkaOutboxEvent",
    "UploadGrant",
    "UserAccount",
    "UtteranceRecord",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "create_engine",
    "ensure_database",
    "session_factory",
]
