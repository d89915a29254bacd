"""The job aggregate's transitions, as a pure function: every rule without a database."""

import pytest

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult
from emotion_contract.webhooks import WebhookEventType
from services.gateway.job_machine import (
    Change,
    Complete,
    Fail,
    JobState,
    Progress,
    Redrive,
    Requeue,
    Transition,
    transition,
)

QUEUED = JobState(AnalysisStatus.QUEUED, None, 1)
TRANSCRIBING = JobState(AnalysisStatus.PROCESSING, Stage.TRANSCRIBE, 1)
COMPLETED = JobState(AnalysisStatus.COMPLETED, Stage.FUSE, 1)
FAILED = JobState(AnalysisStatus.FAILED, Stage.ENCODE_AUDIO, 1, "no_audio_track")
UNQUEUED = JobState(AnalysisStatus.FAILED, Stage.UPLOAD, 1, "queue_unavailable")
RESULT = AnalysisResult(model_version="test", duration_s=1.0, utterances=[])


def fail(attempt: int | None = None, refund: bool = True) -> Fail:
    return Fail(stage=Stage.TRANSCRIBE, code="corrupt_media", reason="broken", attempt=attempt, refund=refund)


def test_the_first_progress_starts_processing_and_the_stage_clock() -> None:
    assert transition(QUEUED, Progress(Stage.TRANSCRIBE, attempt=1)) == Transition(
        TRANSCRIBING, WebhookEventType.ANALYSIS_PROGRESS, clock_starts=True
    )


def test_a_new_stage_restarts_the_clock_and_a_redelivered_one_changes_nothing() -> None:
    moved = transition(TRANSCRIBING, Progress(Stage.ENCODE_AUDIO, attempt=1))
    assert moved is not None and moved.clock_starts and moved.state.stage is Stage.ENCODE_AUDIO
    assert transition(TRANSCRIBING, Progress(Stage.TRANSCRIBE, attempt=1)) is None


def test_another_attempts_progress_is_ignored() -> None:
    assert transition(TRANSCRIBING, Progress(Stage.FUSE, attempt=2)) is None
    redriven = JobState(AnalysisStatus.QUEUED, None, 2)
    assert transition(redriven, Progress(Stage.FUSE, attempt=1)) is None


def test_completion_ends_a_live_job_in_fuse_whatever_its_stage() -> None:
    for state in (QUEUED, TRANSCRIBING):
        assert transition(state, Complete(RESULT)) == Transition(
            COMPLETED, WebhookEventType.ANALYSIS_COMPLETED, measured_s=1.0
        )


def test_a_failure_ends_a_live_job_with_its_code_and_says_whether_to_refund() -> None:
    moved = transition(TRANSCRIBING, fail(attempt=1))
    assert moved == Transition(
        JobState(AnalysisStatus.FAILED, Stage.TRANSCRIBE, 1, "corrupt_media"),
        WebhookEventType.ANALYSIS_FAILED,
        refund=True,
    )
    kept = transition(TRANSCRIBING, fail(refund=False))
    assert kept is not None and not kept.refund


def test_a_failure_after_work_on_the_file_keeps_the_units_and_charges_its_measured_length() -> None:
    spent = Fail(Stage.ENCODE_AUDIO, "internal_error", "broke", attempt=1, measured_s=42.0)
    moved = transition(TRANSCRIBING, spent)
    assert moved is not None and not moved.refund and moved.measured_s == 42.0


def test_a_measurement_charges_and_moves_nothing() -> None:
    audio = JobState(AnalysisStatus.PROCESSING, Stage.ENCODE_AUDIO, 1)
    for state in (TRANSCRIBING, audio):  # it may come once the next stage has started
        assert transition(state, Progress(Stage.TRANSCRIBE, attempt=1, measured_s=60.0)) == Transition(
            state, None, measured_s=60.0
        )
    assert transition(TRANSCRIBING, Progress(Stage.TRANSCRIBE, attempt=2, measured_s=60.0)) is None
    assert transition(COMPLETED, Progress(Stage.TRANSCRIBE, attempt=1, measured_s=60.0)) is None


def test_a_replaced_attempts_failure_says_nothing_of_the_new_one() -> None:
    second = JobState(AnalysisStatus.PROCESSING, Stage.TRANSCRIBE, 2)
    assert transition(second, fail(attempt=1)) is None
    assert transition(second, fail(attempt=2)) is not None
    assert transition(second, fail()) is not None  # the job itself (the sweeper, the intake)


@pytest.mark.parametrize("final", [COMPLETED, FAILED], ids=["completed", "failed"])
@pytest.mark.parametrize(
    "change",
    [Progress(Stage.FUSE, attempt=1), Complete(RESULT), fail(), fail(attempt=1), Redrive(seen_attempt=1)],
    ids=["progress", "complete", "fail", "fail-attempt", "redrive"],
)
def test_final_states_are_final(final: JobState, change: Change) -> None:
    assert transition(final, change) is None


def test_a_redrive_queues_the_next_attempt_and_asks_for_it_once() -> None:
    moved = transition(TRANSCRIBING, Redrive(seen_attempt=1))
    assert moved == Transition(JobState(AnalysisStatus.QUEUED, None, 2), None, request=True)
    assert moved is not None and transition(moved.state, Redrive(seen_attempt=1)) is None


def test_only_a_job_failed_with_the_given_code_is_requeued_and_charged_again() -> None:
    moved = transition(UNQUEUED, Requeue(code="queue_unavailable"))
    assert moved == Transition(JobState(AnalysisStatus.QUEUED, None, 2), None, request=True, charge=True)
    assert transition(FAILED, Requeue(code="queue_unavailable")) is None
    assert transition(QUEUED, Requeue(code="queue_unavailable")) is None
    assert transition(COMPLETED, Requeue(code="queue_unavailable")) is None


def test_a_failure_needs_a_code_and_a_reason() -> None:
    with pytest.raises(ValueError, match="code and a reason"):
        Fail(stage=Stage.FUSE, code="", reason="x")
