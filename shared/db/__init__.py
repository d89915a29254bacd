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
    delete_job,
    fail_job,
    find_job_by_key,
    find_stuck_jobs,
    get_job,
    list_jobs,
    list_utterances,
    mark_stage,
    redrive_job,
    requeue_failed_job,
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
from shared.db.processed_events import prune_events, record_event
from shared.db.session import create_engine, ensure_database, session_factory
from shared.db.usage import QuotaExceededError, QuotaLimits, QuotaResource, Usage, current_period, get_usage
from shared.db.webhook_models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventType,
    WebhookSubscription,
)

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ApiKey",
    "AuthSession",
    "DeliveryStatus",
    "FusionPart",
    "Job",
    "JobBase",
    "JobCreate",
    "JobStatus",
    "ProcessedEvent",
    "QuotaCharge",
    "QuotaExceededError",
    "QuotaLimits",
    "QuotaResource",
    "Usage",
    "UserAccount",
    "UtteranceRecord",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookSubscription",
    "complete_job",
    "count_jobs",
    "create_engine",
    "create_job",
    "current_period",
    "delete_job",
    "delete_parts",
    "ensure_database",
    "fail_job",
    "find_job_by_key",
    "find_stuck_jobs",
    "get_job",
    "get_parts",
    "get_usage",
    "list_jobs",
    "list_utterances",
    "mark_stage",
    "prune_events",
    "put_part",
    "record_event",
    "redrive_job",
    "requeue_failed_job",
    "session_factory",
]
