"""PostgreSQL state: tables, migrations, sessions and the repository functions the services call.

Repository functions take a keyword-only `session` and commit their own work.
"""

from shared.db.account_models import ApiKey, AuthSession, UserAccount
from shared.db.fusion_parts import delete_parts, get_parts, put_part
from shared.db.jobs import (
    QuotaCharge,
    complete_job,
    count_jobs,
    create_job,
    fail_job,
    find_stuck_jobs,
    get_job,
    list_jobs,
    list_utterances,
    mark_stage,
    redrive_job,
)
from shared.db.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    FusionPart,
    Job,
    JobBase,
    JobCreate,
    JobStatus,
    ProcessedEvent,
    UtteranceRecord,
)
from shared.db.usage import QuotaExceededError, QuotaLimits, QuotaResource, Usage, current_period, get_usage
from shared.db.webhook_models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventType,
    WebhookSubscription,
)
from shared.db.processed_events import prune_events, record_event
from shared.db.session import create_engine, ensure_database, session_factory

__all__ = [
    "ApiKey",
    "AuthSession",
    "DeliveryStatus",
    "QuotaCharge",
    "QuotaExceededError",
    "QuotaLimits",
    "QuotaResource",
    "Usage",
    "UserAccount",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookSubscription",
    "current_period",
    "get_usage",
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "FusionPart",
    "Job",
    "JobBase",
    "JobCreate",
    "JobStatus",
    "ProcessedEvent",
    "UtteranceRecord",
    "complete_job",
    "count_jobs",
    "create_engine",
    "create_job",
    "delete_parts",
    "ensure_database",
    "fail_job",
    "find_stuck_jobs",
    "get_job",
    "get_parts",
    "list_jobs",
    "list_utterances",
    "mark_stage",
    "prune_events",
    "put_part",
    "record_event",
    "redrive_job",
    "session_factory",
]
