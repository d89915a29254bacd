"""The fault matrix: with analyses in flight, each process of the stack is killed (SIGKILL, as a crash or an
OOM kill ends it) and started again, in turn. Every analysis must complete, once; each completion must reach
the subscribed webhook under one id (a resend keeps it); no quota unit may be charged twice. The clients
wait through all of it, the gateway's and the broker's deaths included.

`make restart SERVICE=NAME KILL=1` does by hand, against `make up`, what each step here does."""

import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from devstack import LocalStack, ServiceName, sign_up
from emotion_analyzer import Analysis, AnalysisStatus, EmotionAnalyzer
from tests.media_factory import MediaSet
from tests.webhook_receiver import ThreadedReceiver

pytestmark = pytest.mark.e2e

# The processes of the stack, by the names `make status` prints: the four workers, the gateway, the auth
# service, the broker and the S3 server.
FAULTS = (
    ServiceName.TRANSCRIBER.value,
    ServiceName.VIDEO_ENCODER.value,
    ServiceName.AUDIO_ENCODER.value,
    ServiceName.FUSION.value,
    ServiceName.GATEWAY.value,
    ServiceName.AUTH.value,
    "kafka",
    "s3",
)
JOBS_PER_FAULT = 2
IN_FLIGHT_WAIT_S = 10.0
WAIT_S = 600.0
WEBHOOK_WAIT_S = 120.0


def _in_flight(api: EmotionAnalyzer, ids: list[uuid.UUID]) -> list[str]:
    """Each job's status (and stage) once the first has left the queue, or after a few seconds."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while api.get(ids[0]).status is AnalysisStatus.QUEUED and time.monotonic() < deadline:
        time.sleep(1.0)  # polls stay well under the key's request rate
    seen = [api.get(job_id) for job_id in ids]
    return [f"{a.status.value}:{a.stage.value}" if a.stage else a.status.value for a in seen]


def test_every_analysis_completes_once_whichever_process_is_killed(
    full_stack: LocalStack, media: MediaSet
) -> None:
    gateway_url = full_stack.service_url(ServiceName.GATEWAY)
    account = sign_up(gateway_url)
    report: list[str] = []
    with (
        ThreadedReceiver() as threaded,
        EmotionAnalyzer(gateway_url, account.api_key, timeout=30.0) as api,
        ThreadPoolExecutor(max_workers=len(FAULTS) * JOBS_PER_FAULT) as waiters,
    ):
        url = threaded.receiver.endpoint()
        hook = api.webhooks.create(url, ["analysis.completed", "analysis.failed"])
        threaded.receiver.expect(url, hook.secret)

        waiting: dict[uuid.UUID, Future[Analysis]] = {}
        charged_per_job = 0.0
        for fault in FAULTS:
            ids = [api.analyze_file(media.speech_m4a).id for _ in range(JOBS_PER_FAULT)]
            if not charged_per_job:
                charged_per_job = api.usage().video_seconds.used / JOBS_PER_FAULT
            for job_id in ids:
                # Clients wait from now on, through every later fault: the gateway's and broker's too.
                waiting[job_id] = waiters.submit(api.wait, job_id, WAIT_S)
            states = _in_flight(api, ids)
            restart_s = full_stack.restart(fault, kill=True)
            report.append(f"{fault}: killed with {states}; serving again after {restart_s:.1f} s")

        finished = {job_id: future.result(timeout=WAIT_S) for job_id, future in waiting.items()}
        statuses = Counter(analysis.status for analysis in finished.values())
        report.append(f"{statuses[AnalysisStatus.COMPLETED]} of {len(finished)} analyses completed")
        print("\n".join(report))
        unfinished = {
            str(i): (a.status.value, a.stage, a.error, a.attempt)
            for i, a in finished.items()
            if a.status is not AnalysisStatus.COMPLETED
        }
        assert not unfinished, unfinished
        assert all(a.result is not None and a.result.utterances for a in finished.values())
        # Nothing waited for the stuck-job sweeper to re-drive it: the first attempt went through.
        assert all(a.attempt == 1 for a in finished.values()), {i: a.attempt for i, a in finished.items()}

        # Completed once: one charge each, whatever was redelivered or re-driven.
        usage = api.usage()
        assert usage.analyses.used == len(finished)
        assert usage.video_seconds.used == pytest.approx(charged_per_job * len(finished))

        # Announced once each: every job's completion arrived, and a resend kept its first id.
        deadline = time.monotonic() + WEBHOOK_WAIT_S
        while True:
            received = [r for r in threaded.receiver.at(url) if r.json["type"] == "analysis.completed"]
            if {r.json["data"]["id"] for r in received} >= {str(i) for i in finished}:
                break
            assert time.monotonic() < deadline, f"{len(received)} completions of {len(finished)} arrived"
            time.sleep(0.2)
        assert all(r.verified for r in received)
        ids_per_job: dict[str, set[str]] = {}
        for request in received:
            ids_per_job.setdefault(request.json["data"]["id"], set()).add(request.headers["webhook-id"])
        assert all(len(webhook_ids) == 1 for webhook_ids in ids_per_job.values()), ids_per_job
        assert not [r for r in threaded.receiver.at(url) if r.json["type"] == "analysis.failed"]
