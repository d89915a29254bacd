"""Through the gateway's REST API, against the six services running as separate processes over Kafka."""

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from analyzer.pipeline import InProcessAnalyzer, PipelineOptions
from devstack import LocalStack, ServiceName
from devstack.probes import NotReadyError, wait_until
from emotion_contract.labels import EMOTIONS, SENTIMENTS, Modality
from emotion_contract.results import AnalysisResult, UtteranceResult
from tests.bundle_fixtures import TEST_CONTEXT, TEST_DIALOGUE_HIDDEN
from tests.e2e.conftest import MAX_UPLOAD_BYTES
from tests.integration.db_fixtures import tables_mentioning
from tests.media_factory import MediaSet

pytestmark = pytest.mark.e2e


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _upload_three_steps(api: httpx.Client, path: Path, filename: str | None = None) -> str:
    ticket = api.post("/upload-url", json={"filename": filename or path.name})
    assert ticket.status_code == 200, ticket.text
    body = ticket.json()
    posted = httpx.post(
        body["upload_url"], data=body["fields"], files={"file": (path.name, path.read_bytes())}, timeout=60
    )
    assert posted.status_code == 204, posted.text
    return str(body["key"])


def _analyse(api: httpx.Client, key: str) -> dict[str, Any]:
    response = api.post("/analyses", json={"key": key})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _wait(api: httpx.Client, analysis_id: str, timeout_s: float = 240.0) -> dict[str, Any]:
    """Long poll until the job is terminal."""
    waited = 0.0
    while waited < timeout_s:
        response = api.get(f"/analyses/{analysis_id}", params={"wait": 30})
        assert response.status_code == 200, response.text
        analysis = dict(response.json())
        if analysis["status"] in ("completed", "failed"):
            return analysis
        waited += 30
    pytest.fail(f"analysis {analysis_id} did not finish in {timeout_s} s: {analysis}")


def _check_distributions(result: AnalysisResult) -> None:
    assert result.utterances
    for utterance in result.utterances:
        assert sorted(s.label.value for s in utterance.emotions) == sorted(EMOTIONS)
        assert sorted(s.label.value for s in utterance.sentiments) == sorted(SENTIMENTS)
        assert abs(sum(s.confidence for s in utterance.emotions) - 1) < 1e-3
        assert abs(sum(s.confidence for s in utterance.sentiments) - 1) < 1e-3


def _sse_events(api: httpx.Client, analysis_id: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = "message"
    with api.stream("GET", f"/analyses/{analysis_id}/events", timeout=httpx.Timeout(30, read=240)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.removeprefix("data:"))))
                name = "message"
    return events


def test_real_talking_video_through_the_three_step_api(
    api: httpx.Client, talking_videos: Path, full_stack: LocalStack
) -> None:
    video = talking_videos / "vr_face_1.mp4"
    key = _upload_three_steps(api, video)
    analysis = _analyse(api, key)
    assert analysis["status"] in ("queued", "processing")

    events = _sse_events(api, analysis["id"])
    assert events[-1][0] == "completed", events
    final = events[-1][1]
    assert final["status"] == "completed"
    result = AnalysisResult.model_validate(final["result"])
    _check_distributions(result)
    spoken = _words(" ".join(u.text for u in result.utterances))
    assert {"biggest", "help", "better"} <= spoken, spoken
    assert result.model_version == "0.0.0-test"
    assert 5.5 < result.duration_s < 7.0
    # a frontal face: the facial-expression network speaks for the video in every utterance
    assert all(u.modalities[Modality.VIDEO].available for u in result.utterances)
    assert all(u.modalities[Modality.VIDEO].emotions is not None for u in result.utterances)
    # the same result through a plain GET
    again = api.get(f"/analyses/{analysis['id']}").json()
    assert AnalysisResult.model_validate(again["result"]) == result
    video_metrics = httpx.get(full_stack.metrics_url(ServiceName.VIDEO_ENCODER), timeout=10).text
    assert _metric_total(video_metrics, "ea_inference_seconds_per_utterance_count") >= 1


def test_espeak_speech_gives_known_words_at_known_times(api: httpx.Client, media: MediaSet) -> None:
    analysis = _wait(api, _analyse(api, _upload_three_steps(api, media.speech_mp4))["id"])
    assert analysis["status"] == "completed", analysis
    result = AnalysisResult.model_validate(analysis["result"])
    _check_distributions(result)
    assert len(result.utterances) == 2, result.utterances
    expected = zip(result.utterances, media.speech.phrases, media.speech.spans, strict=True)
    for utterance, phrase, (start, end) in expected:
        assert len(_words(utterance.text) & _words(phrase)) >= len(_words(phrase)) / 2, utterance.text
        assert abs(utterance.start_time - start) < 0.7
        assert abs(utterance.end_time - end) < 0.7
    # a plain coloured picture: no face, so the video modality is reported missing, not guessed
    missing = {m.modality.value: m.reason for m in result.missing_modalities}
    assert missing["video"] == "no face was found in the video"


def test_audio_only_file_by_multipart_upload(api: httpx.Client, media: MediaSet) -> None:
    with media.speech_mp3.open("rb") as handle:
        response = api.post("/analyses", files={"file": ("speech.mp3", handle, "audio/mpeg")})
    assert response.status_code == 201, response.text
    analysis = _wait(api, response.json()["id"])
    assert analysis["status"] == "completed", analysis
    result = AnalysisResult.model_validate(analysis["result"])
    _check_distributions(result)
    assert len(_words(" ".join(u.text for u in result.utterances)) & _words(media.speech.phrases[0])) >= 4
    missing = {m.modality.value: m.reason for m in result.missing_modalities}
    assert missing["video"] == "the file has no video stream"


def test_a_video_without_speech_completes_in_windows_with_words_and_voice_missing(
    api: httpx.Client, media: MediaSet
) -> None:
    analysis = _wait(api, _analyse(api, _upload_three_steps(api, media.video_noise))["id"])
    assert analysis["status"] == "completed", analysis
    result = AnalysisResult.model_validate(analysis["result"])
    assert [u.text for u in result.utterances] == ["", ""]
    assert result.utterances[-1].end_time == pytest.approx(result.duration_s, abs=0.1)
    missing = {m.modality.value: m.reason for m in result.missing_modalities}
    assert missing["text"] == missing["audio"] == "no speech was found"


def test_a_video_without_an_audio_track_completes(api: httpx.Client, media: MediaSet) -> None:
    analysis = _wait(api, _analyse(api, _upload_three_steps(api, media.video_no_audio, "silent.mp4"))["id"])
    assert analysis["status"] == "completed", analysis
    result = AnalysisResult.model_validate(analysis["result"])
    assert len(result.utterances) == 2 and result.language is None
    missing = {m.modality.value: m.reason for m in result.missing_modalities}
    assert missing["text"] == missing["audio"] == "the file has no audio track"


@pytest.mark.parametrize(("kind", "code"), [("truncated_faststart", "corrupt_media")])
def test_undecodable_uploads_end_as_failed_jobs_with_stage_and_reason(
    api: httpx.Client, media: MediaSet, kind: str, code: str
) -> None:
    path: Path = getattr(media, kind)
    analysis = _wait(api, _analyse(api, _upload_three_steps(api, path, f"{kind}.mp4"))["id"])
    assert analysis["status"] == "failed"
    assert analysis["error"]["code"] == code
    assert analysis["error"]["stage"] == "transcribe"
    assert analysis["error"]["message"]
    assert analysis["result"] is None


def test_bad_requests_are_refused_at_the_gateway(api: httpx.Client, media: MediaSet, tmp_path: Path) -> None:
    # An empty file cannot even be uploaded: the policy's size range starts at one byte.
    ticket = api.post("/upload-url", json={"filename": "empty.mp4"}).json()
    refused = httpx.post(ticket["upload_url"], data=ticket["fields"], files={"file": ("empty.mp4", b"")})
    assert refused.status_code == 400 and "EntityTooSmall" in refused.text
    empty = ticket["key"]
    assert api.post("/analyses", json={"key": empty}).json()["error"]["code"] == "unknown_key"
    not_media = _upload_three_steps(api, media.random, "random.mp4")
    response = api.post("/analyses", json={"key": not_media})
    assert (response.status_code, response.json()["error"]["code"]) == (415, "not_media")
    ticket = api.post("/upload-url", json={"filename": "huge.mp4"}).json()
    huge = {"file": ("huge.mp4", b"\0" * (MAX_UPLOAD_BYTES + 1))}
    refused = httpx.post(ticket["upload_url"], data=ticket["fields"], files=huge, timeout=60)
    assert refused.status_code == 400 and "EntityTooLarge" in refused.text  # the object store's policy
    response = api.post("/analyses", json={"key": ticket["key"]})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_key")
    response = api.post("/analyses", json={"key": "uploads/someone-else/0000/talk.mp4"})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_key")
    # Cut before its index: the gateway cannot read how long it is, so nothing is charged or queued.
    response = api.post("/analyses", json={"key": _upload_three_steps(api, media.truncated)})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "corrupt_media")
    response = api.post("/analyses", json={"key": empty}, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert api.post("/upload-url", json={"filename": "notes.txt"}).status_code == 415


def test_the_same_key_twice_is_one_analysis(api: httpx.Client, media: MediaSet) -> None:
    key = _upload_three_steps(api, media.speech_flac)
    first = _analyse(api, key)
    second = api.post("/analyses", json={"key": key})
    assert second.status_code == 200
    assert second.json()["id"] == first["id"]
    assert _wait(api, first["id"])["status"] == "completed"


def test_a_crashed_service_loses_no_job(api: httpx.Client, media: MediaSet, full_stack: LocalStack) -> None:
    """Kill fusion, submit; the job waits in the topics; fusion restarts and finishes it."""
    full_stack.stop_service(ServiceName.FUSION, kill=True)
    try:
        analysis = _analyse(api, _upload_three_steps(api, media.speech_m4a))
        stuck = api.get(f"/analyses/{analysis['id']}", params={"wait": 15}).json()
        assert stuck["status"] in ("queued", "processing")
    finally:
        full_stack.start_service(ServiceName.FUSION)
    assert _wait(api, analysis["id"])["status"] == "completed"


METRICS_SETTLE_S = 30.0
_SERVICES = frozenset(n.value for n in ServiceName)
_CONSUMERS = ("transcriber", "video_encoder", "audio_encoder", "fusion")
_LAG_GROUPS = (*_CONSUMERS, "gateway")


def _scrape_services(stack: LocalStack) -> dict[str, str]:
    """Each running service's Prometheus text, by service name."""
    scraped = {}
    for record in stack.state().processes:
        if record.name in _SERVICES and record.port is not None:
            response = httpx.get(stack.metrics_url(record.name), timeout=10)
            assert response.status_code == 200, record.name
            scraped[record.name] = response.text
    return scraped


def _unmet_metrics(scraped: dict[str, str]) -> list[str]:
    """The expectations on the services' metrics after one analysis that `scraped` does not meet."""
    if set(scraped) != _SERVICES:
        return [f"metrics scraped from {sorted(scraped)} only"]
    at_least = [
        ("gateway", "ea_gateway_jobs_created_total", 1),
        # progress of transcribe, encode audio and fuse (the video encoder runs unannounced beside the
        # transcriber), then completed
        ("gateway", "ea_gateway_events_consumed_total", 4),
        ("gateway", "ea_gateway_request_seconds_count", 3),
        ("gateway", "ea_gateway_auth_checks_total", 1),
        ("auth", "ea_auth_introspections_total", 1),
        ("auth", "ea_auth_registrations_total", 1),
        ("transcriber", "faststream_published_messages_total", 2),  # progress, ready
    ]
    for consumer in _CONSUMERS:
        at_least += [
            (consumer, "faststream_received_messages_total", 1),
            (consumer, "ea_stage_seconds_count", 1),
        ]
        # This clip shows no face, so the face model never runs: the talking-video test checks its timing.
        if consumer != "video_encoder":
            at_least.append((consumer, "ea_inference_seconds_per_utterance_count", 1))
    unmet = [
        f"{service} {metric} = {total} < {least}"
        for service, metric, least in at_least
        if (total := _metric_total(scraped[service], metric)) < least
    ]
    # Each consumer reports its own group's lag.
    unmet += [
        f"{group} has no ea_consumer_lag series"
        for group in _LAG_GROUPS
        if f'ea_consumer_lag{{group="{group}",topic=' not in scraped[group]
    ]
    unmet += [
        f"gateway has no ea_jobs series for {status}"
        for status in ("queued", "processing", "completed", "failed")
        if f'ea_jobs{{status="{status}"}} ' not in scraped["gateway"]
    ]
    return unmet


def _lag_log_lines(stack: LocalStack) -> str:
    """What the services' logs say of their lag polls: the reason a lag series may be missing."""
    lines = []
    for name in _LAG_GROUPS:
        log = stack.config.logs_dir / f"{name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        lines += [f"{name}: {line}" for line in text.splitlines() if "consumer lag" in line][-5:]
    return "\n".join(lines)


def _metric_total(text: str, name: str) -> float:
    """Sum of every sample of a metric family (all label sets) in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_service_exposes_metrics_that_moved(
    api: httpx.Client, full_stack: LocalStack, media: MediaSet
) -> None:
    """After an analysis, each service's counters show its work."""
    analysis = _wait(api, _analyse(api, _upload_three_steps(api, media.speech_mp4, "metrics.mp4"))["id"])
    assert analysis["status"] == "completed"
    # Metrics settle after the job does: the gateway may read a progress event after the completion, and the
    # lag gauge is polled in the background (absent between a refused poll and the retry after it).
    with contextlib.suppress(NotReadyError):
        wait_until(
            lambda: not _unmet_metrics(_scrape_services(full_stack)),
            what="the services' metrics",
            timeout_s=METRICS_SETTLE_S,
        )
    assert _unmet_metrics(_scrape_services(full_stack)) == [], _lag_log_lines(full_stack)


def test_deleting_an_analysis_leaves_nothing_of_it_in_any_table_or_bucket(
    api: httpx.Client, media: MediaSet, full_stack: LocalStack
) -> None:
    key = _upload_three_steps(api, media.speech_m4a, "private.m4a")
    analysis = _wait(api, _analyse(api, key)["id"])
    assert analysis["status"] == "completed"
    job_id = analysis["id"]

    async def mentioning(needle: str) -> dict[str, int]:
        engine = create_async_engine(full_stack.database_url)
        try:
            async with AsyncSession(engine) as session:
                return await tables_mentioning(session, needle)
        finally:
            await engine.dispose()

    assert "job" in asyncio.run(mentioning(job_id))
    assert api.delete(f"/analyses/{job_id}").status_code == 204
    assert asyncio.run(mentioning(job_id)) == {}
    assert asyncio.run(mentioning(key)) == {}
    store = full_stack.object_store()
    # The broker's own bucket holds its log, bounded by topic retention (deploy/k8s: 3 to 7 days).
    for bucket in full_stack.config.buckets:
        assert not [k for k in store.list_keys(bucket, "") if job_id in k or k == key], bucket


def test_the_stack_and_the_in_process_analyzer_read_the_words_in_the_same_context(
    api: httpx.Client, media: MediaSet, bundle_dir: Path
) -> None:
    """The transcriber reads every utterance of the file in its conversation, as `emotion-analyzer analyze`
    does: the same words give the same text distributions both ways."""
    analysis = _wait(api, _analyse(api, _upload_three_steps(api, media.speech_mp4))["id"])
    assert analysis["status"] == "completed", analysis
    served = AnalysisResult.model_validate(analysis["result"])
    analyzer = InProcessAnalyzer(PipelineOptions(bundle_uri=str(bundle_dir)))
    local = analyzer.analyze(media.speech_mp4)
    texts = [u.text for u in served.utterances]
    assert len(texts) == 2 and [u.text for u in local.utterances] == texts

    def text_distribution(utterance: UtteranceResult) -> list[float]:
        prediction = utterance.modalities[Modality.TEXT]
        assert prediction.emotions is not None and prediction.sentiments is not None
        emotions = {s.label.value: s.confidence for s in prediction.emotions}
        sentiments = {s.label.value: s.confidence for s in prediction.sentiments}
        return [emotions[label] for label in EMOTIONS] + [sentiments[label] for label in SENTIMENTS]

    for ours, theirs in zip(local.utterances, served.utterances, strict=True):
        assert text_distribution(ours) == pytest.approx(text_distribution(theirs), abs=1e-4)
    # Which can fail: each utterance read alone is another input than read beside the other.
    window = analyzer.text.config.context_window
    assert (window.before, window.after) == TEST_CONTEXT
    assert analyzer.text.config.text_dialogue_hidden == TEST_DIALOGUE_HIDDEN  # and the GRU read the file
    together = analyzer.text.embed(texts)
    alone = [analyzer.text.embed([text])[0] for text in texts]
    assert all(abs(together[i] - alone[i]).max() > 1e-3 for i in range(len(texts)))


HOSTILE = Path(__file__).resolve().parents[1] / "data" / "picture-16000x16000.mp4"


def _peak_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def test_a_hostile_picture_is_refused_at_intake_by_both_paths_and_the_gateway_never_decodes_it(
    api: httpx.Client, full_stack: LocalStack
) -> None:
    """A 750 KB MP4 asking for a 16000x16000 picture: 422 media_over_limits by the three-step upload and by
    multipart, nothing charged or queued, and the gateway's own memory does not move (its header is read by a
    bounded child process; read in the gateway, it took it from ~150 MB to ~760 MB)."""
    [gateway] = [r for r in full_stack.state().processes if r.name == ServiceName.GATEWAY.value]
    before_kib, used_before = _peak_kib(gateway.pid), api.get("/usage").json()
    response = api.post("/analyses", json={"key": _upload_three_steps(api, HOSTILE)})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "media_over_limits"), (
        response.text
    )
    assert "16000x16000" in response.json()["error"]["message"]
    with HOSTILE.open("rb") as handle:
        response = api.post("/analyses", files={"file": (HOSTILE.name, handle, "video/mp4")})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "media_over_limits"), (
        response.text
    )
    after_kib = _peak_kib(gateway.pid)
    print(f"gateway peak memory {before_kib / 1024:.0f} MB -> {after_kib / 1024:.0f} MB on the hostile file")
    assert after_kib - before_kib < 100 * 1024
    assert api.get("/usage").json() == used_before
