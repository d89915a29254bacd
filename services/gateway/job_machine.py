"""A job's life as one pure function: from its state and a change, the next state and what the change owes.

    queued ──progress(stage)──▶ processing(stage) ──progress(other stage)──▶ processing(other stage)
      │  ▲                           │
      │  └──── redrive (attempt+1) ◀─┤            a stuck live job, by the sweeper
      │                              ├──complete──▶ completed
      └──────────fail────────────────┴──fail──────▶ failed ──requeue (attempt+1)──▶ queued
                                                            (only a job the queue never took)

`completed` and `failed` are final, except that requeue. A change that no longer applies (another
attempt's progress, a late failure of a re-driven attempt, anything on a finished job) gives None: a
redelivered or late event finds nothing to do rather than an error. `services.gateway.db.jobs` applies a
transition with its webhook event, its Kafka event and its notification in one transaction.
"""

from dataclasses import dataclass

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult
from emotion_contract.webhooks import WebhookEventType


@dataclass(frozen=True)
class JobState:
    status: AnalysisStatus
    stage: Stage | None
    attempt: int
    error_code: str | None = None


@dataclass(frozen=True)
class Progress:
    """A stage of `attempt` started (`analysis.progress`); or, with `measured_s`, measured the file (the job
    stays where it is, and is charged at least that long)."""

    stage: Stage
    attempt: int
    measured_s: float | None = None


@dataclass(frozen=True)
class Complete:
    """Fusion published the result (`analysis.completed`): whichever attempt got there first wins."""

    result: AnalysisResult


@dataclass(frozen=True)
class Fail:
    """A stage, the sweeper or the intake gave up. `attempt`: the failing attempt, when one stage of it
    failed (None: the job itself, whatever its attempt). `stage`: where it failed (None: where the job is).
    `refund`: give the units back (no work was spent); `measured_s`: the file's measured length, where a
    stage had worked on it (charged at least that)."""

    stage: Stage | None
    code: str
    reason: str
    attempt: int | None = None
    refund: bool = True
    measured_s: float | None = None

    def __post_init__(self) -> None:
        if not self.code or not self.reason:
            raise ValueError("a failure needs both a code and a reason")


@dataclass(frozen=True)
class Redrive:
    """The sweeper found the job stuck in `seen_attempt` and starts the next attempt."""

    seen_attempt: int


@dataclass(frozen=True)
class Requeue:
    """A job that failed with `code` (the queue never took it) is sent again by its owner: a new attempt,
    charged again."""

    code: str


Change = Progress | Complete | Fail | Redrive | Requeue


@dataclass(frozen=True)
class Transition:
    state: JobState
    webhook: WebhookEventType | None
    """The webhook event the change is reported as (its stage is the new state's); None for a new attempt,
    which the user sees as the progress that follows."""
    request: bool = False
    """The new attempt must be sent to the pipeline (`analysis.requested`)."""
    clock_starts: bool = False
    """The stuck-job clock (`stage_started_at`) starts now; else it keeps running (or, queued, is off)."""
    refund: bool = False
    charge: bool = False
    measured_s: float | None = None
    """The file's measured length: the job is charged at least this (past its limit if need be: the work is
    done, and the next file is refused)."""


def transition(state: JobState, change: Change) -> Transition | None:
    """The change applied to the state, or None when it does not apply (or changes nothing)."""
    live = not state.status.is_terminal
    match change:
        case Progress(attempt=attempt, measured_s=measured) if measured is not None:
            # A measurement moves nothing (it may come after the next stage has started): only the charge.
            if not live or attempt != state.attempt:
                return None
            return Transition(state, None, measured_s=measured)
        case Progress(stage=stage, attempt=attempt):
            if not live or attempt != state.attempt:
                return None
            if state.status is AnalysisStatus.PROCESSING and state.stage is stage:
                return None  # a redelivered progress must not restart the clock the sweeper reads
            processing = JobState(AnalysisStatus.PROCESSING, stage, state.attempt)
            return Transition(processing, WebhookEventType.ANALYSIS_PROGRESS, clock_starts=True)
        case Complete(result=result):
            if not live:
                return None
            # FUSE even when fusion's own progress event arrives after the result.
            completed = JobState(AnalysisStatus.COMPLETED, Stage.FUSE, state.attempt)
            return Transition(completed, WebhookEventType.ANALYSIS_COMPLETED, measured_s=result.duration_s)
        case Fail(stage=stage, code=code, attempt=attempt, refund=refund, measured_s=measured):
            if not live or (attempt is not None and attempt < state.attempt):
                return None  # a failure of an attempt the sweeper replaced says nothing of the new one
            failed = JobState(
                AnalysisStatus.FAILED, stage or state.stage or Stage.UPLOAD, state.attempt, code
            )
            # Work spent on the file is paid for: only a failure before any work gives the units back.
            spent = measured is not None
            return Transition(
                failed, WebhookEventType.ANALYSIS_FAILED, refund=refund and not spent, measured_s=measured
            )
        case Redrive(seen_attempt=seen):
            if not live or seen != state.attempt:
                return None  # another sweeper re-drove it first, or it moved on
            queued = JobState(AnalysisStatus.QUEUED, None, state.attempt + 1)
            return Transition(queued, None, request=True)
        case Requeue(code=code):
            if state.status is not AnalysisStatus.FAILED or state.error_code != code:
                return None
            queued = JobState(AnalysisStatus.QUEUED, None, state.attempt + 1)
            return Transition(queued, None, request=True, charge=True)
