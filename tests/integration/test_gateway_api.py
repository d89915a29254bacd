"""The gateway's REST API in-process (uvicorn, a free port) against the real broker, S3 server and PostgreSQL.

The pipeline's services are not running: the tests publish their status events to Kafka themselves and
read what the gateway publishes with an aiokafka consumer.
"""

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped, unused-ignore]
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select, text

from emotion_contract.events import (
    AnalysisCompleted,
    AnalysisFailed,
    AnalysisProgress,
    DeadLettered,
    Event,
    Stage,
)
from emotion_contract.results import AnalysisResult
from services.gateway.main import create_app
from services.gateway.settings import Settings
from services.gateway.state import Gateway
from services.gateway.sweeper import SWEEPER_LOCK_KEY, run_sweeper, sweep_if_leader, sweep_once
from services.gateway.upload_expiry import expire_unclaimed_uploads
from shared.storage import ObjectStore
from tests.integration.gateway_fixtures import (
    MAX_UPLOAD_BYTES,
    STATUS_TIMEOUT_S,
    Account,
    RequestedEvents,
    analyse,
    error_of,
    new_analysis,
    post_upload,
    register,
    result_of_one_utterance,
    upload,
    wait_until,
)
from tests.servers import serve_app

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]


async def test_three_step_flow_queues_a_frozen_copy_of_the_upload(
    client: httpx.AsyncClient,
    account: Account,
    video: bytes,
    wav: bytes,
    requested: RequestedEvents,
    object_store: ObjectStore,
) -> None:
    ticket = await client.post("/v1/upload-url", json={"filename": "My Talk (final).MP4"})
    key = ticket.json()["key"]
    assert key.startswith(f"uploads/{account.id}/") and key.endswith("/My_Talk_final.mp4")
    async with httpx.AsyncClient() as s3:
        posted = await post_upload(s3, ticket.json(), video)
        assert posted.status_code == 204, posted.text

        analysis = await analyse(client, key)

        assert analysis["status"] == "queued" and analysis["stage"] is None and analysis["result"] is None
        assert analysis["size_bytes"] == len(video) and analysis["filename"] == "My_Talk_final.mp4"
        [event] = await requested.wait_for(uuid.UUID(analysis["id"]))
        # The workers read a copy under a key no presigned URL is made for; the upload itself is spent.
        assert event.object_key.startswith(f"media/{account.id}/") and event.object_key.endswith(
            "/My_Talk_final.mp4"
        )
        assert (event.bucket, event.size_bytes, event.attempt) == ("uploads", len(video), 1)
        assert not object_store.exists("uploads", key)
        # The upload policy still works until it expires, but what it writes is not what is analysed.
        assert (await post_upload(s3, ticket.json(), wav)).status_code == 204
    assert object_store.read_head("uploads", event.object_key, len(video) + 1) == video
    again = await client.post("/v1/analyses", json={"key": key})
    assert (again.status_code, again.json()["id"]) == (200, analysis["id"])
    assert object_store.read_head("uploads", event.object_key, len(video) + 1) == video


async def test_an_account_holds_a_bounded_number_of_upload_urls_not_analysed(
    gateway_settings: Settings, gateway_app: tuple[FastAPI, str], video: bytes
) -> None:
    """Each URL may park a file of the upload limit in the bucket: past the cap of URLs not analysed yet,
    429; analysing one gives its place back."""
    capped = gateway_settings.model_copy(
        update={"service_name": "gateway-upload-urls", "max_upload_urls_per_account": 3}
    )
    account = await register(gateway_app[1])
    headers = {"Authorization": f"Bearer {account.key}"}
    async with (
        serve_app(create_app(capped)) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client,
    ):
        tickets = [await client.post("/v1/upload-url", json={"filename": f"{i}.mp4"}) for i in range(3)]
        assert [t.status_code for t in tickets] == [200, 200, 200]
        refused = await client.post("/v1/upload-url", json={"filename": "more.mp4"})
        assert error_of(refused) == (429, "too_many_upload_urls") and refused.headers["retry-after"]
        async with httpx.AsyncClient() as s3:
            assert (await post_upload(s3, tickets[0].json(), video)).status_code == 204
        assert (await client.post("/v1/analyses", json={"key": tickets[0].json()["key"]})).status_code == 201
        assert (await client.post("/v1/upload-url", json={"filename": "next.mp4"})).status_code == 200


async def test_multipart_upload_stores_the_file_and_queues_it(
    client: httpx.AsyncClient,
    account: Account,
    wav: bytes,
    requested: RequestedEvents,
    object_store: ObjectStore,
) -> None:
    response = await client.post("/v1/analyses", files={"file": ("voice memo.wav", wav, "audio/wav")})

    assert response.status_code == 201, response.text
    analysis = response.json()
    assert response.headers["location"].endswith(f"/v1/analyses/{analysis['id']}")
    [event] = await requested.wait_for(uuid.UUID(analysis["id"]))
    assert event.object_key.startswith(f"media/{account.id}/") and event.filename == "voice_memo.wav"
    assert object_store.read_head("uploads", event.object_key, len(wav) + 10) == wav


async def test_the_same_key_twice_returns_the_same_analysis_and_queues_it_once(
    client: httpx.AsyncClient, video: bytes, requested: RequestedEvents
) -> None:
    key = await upload(client, "twice.mp4", video)
    first = await analyse(client, key)

    again = await client.post("/v1/analyses", json={"key": key})

    assert again.status_code == 200 and again.json()["id"] == first["id"]
    await requested.wait_for(uuid.UUID(first["id"]))
    await asyncio.sleep(0.5)  # a second event would have arrived by now
    assert len(requested.of(uuid.UUID(first["id"]))) == 1


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", "Bearer ea_AAAAAAAA_" + "A" * 32, "Basic {key}", "Bearer"]
)
async def test_requests_without_a_valid_key_are_refused(
    client: httpx.AsyncClient, account: Account, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization.format(key=account.key)}
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=headers) as anonymous:
        responses = [
            await anonymous.post("/v1/upload-url", json={"filename": "a.mp4"}),
            await anonymous.post("/v1/analyses", json={"key": f"uploads/{account.id}/x/a.mp4"}),
            await anonymous.get("/v1/analyses"),
            await anonymous.get(f"/v1/analyses/{uuid.uuid4()}"),
        ]
    assert [error_of(response) for response in responses] == [(401, "unauthorized")] * 4
    assert responses[0].headers["www-authenticate"] == "Bearer"


async def test_unknown_keys_are_404(
    client: httpx.AsyncClient, account: Account, video: bytes, object_store: ObjectStore
) -> None:
    never_uploaded = f"uploads/{account.id}/{uuid.uuid4().hex}/clip.mp4"
    # An object that exists but under another owner's prefix.
    foreign = f"uploads/someone-else/{uuid.uuid4().hex}/clip.mp4"
    put = str(object_store.client.presigned_put_object("uploads", foreign, expires=timedelta(minutes=1)))
    async with httpx.AsyncClient() as s3:
        assert (await s3.put(put, content=video)).status_code == 200

    for key in (never_uploaded, foreign, "../../etc/passwd.mp4"):
        response = await client.post("/v1/analyses", json={"key": key})
        assert error_of(response) == (404, "unknown_key"), key


async def test_an_empty_file_is_422(
    client: httpx.AsyncClient, object_store: ObjectStore, tmp_path: Path
) -> None:
    # The upload policy's range starts at one byte, so an empty file is written only some other way.
    ticket = (await client.post("/v1/upload-url", json={"filename": "empty.mp4"})).json()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    object_store.upload_file("uploads", ticket["key"], empty)
    assert error_of(await client.post("/v1/analyses", json={"key": ticket["key"]})) == (422, "empty_file")
    multipart = await client.post("/v1/analyses", files={"file": ("empty.wav", b"", "audio/wav")})
    assert error_of(multipart) == (422, "empty_file")


async def test_a_file_that_is_not_media_is_415(client: httpx.AsyncClient) -> None:
    text = b"just some notes, not a video\n" * 100
    key = await upload(client, "notes.mp4", text)
    assert error_of(await client.post("/v1/analyses", json={"key": key})) == (415, "not_media")
    multipart = await client.post("/v1/analyses", files={"file": ("notes.wav", text, "audio/wav")})
    assert error_of(multipart) == (415, "not_media")


async def test_a_file_over_the_limit_is_refused_by_the_upload_policy_and_by_the_gateway(
    client: httpx.AsyncClient, account: Account, video: bytes, object_store: ObjectStore
) -> None:
    too_big = video + bytes(MAX_UPLOAD_BYTES + 1 - len(video))
    ticket = (await client.post("/v1/upload-url", json={"filename": "big.mp4"})).json()
    assert ticket["max_bytes"] == MAX_UPLOAD_BYTES and ticket["method"] == "POST"
    async with httpx.AsyncClient() as s3:
        refused = await post_upload(s3, ticket, too_big)
        assert refused.status_code == 400 and "<Code>EntityTooLarge</Code>" in refused.text
        empty = await post_upload(s3, ticket, b"")
        assert empty.status_code == 400 and "<Code>EntityTooSmall</Code>" in empty.text
        # The policy names one key: it cannot write another.
        elsewhere = await s3.post(
            ticket["upload_url"],
            data={**ticket["fields"], "key": f"media/{account.id}/x/big.mp4"},
            files={"file": ("big.mp4", video)},
        )
        assert elsewhere.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" not in elsewhere.text
        forged = await s3.post(
            ticket["upload_url"],
            data={**ticket["fields"], "x-amz-signature": "0" * 64},
            files={"file": ("big.mp4", video)},
        )
        assert forged.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in forged.text
    assert not object_store.exists("uploads", ticket["key"])
    assert error_of(await client.post("/v1/analyses", json={"key": ticket["key"]})) == (404, "unknown_key")

    # Written some other way, the gateway's own check still refuses it, and removes it.
    source = Path(tempfile.mkdtemp()) / "big.mp4"
    source.write_bytes(too_big)
    object_store.upload_file("uploads", ticket["key"], source)
    assert error_of(await client.post("/v1/analyses", json={"key": ticket["key"]})) == (413, "file_too_large")
    assert not object_store.exists("uploads", ticket["key"])
    multipart = await client.post("/v1/analyses", files={"file": ("big.mp4", too_big, "video/mp4")})
    assert error_of(multipart) == (413, "file_too_large")


async def test_unsupported_extensions_are_415(client: httpx.AsyncClient, video: bytes) -> None:
    response = await client.post("/v1/upload-url", json={"filename": "slides.pdf"})
    assert error_of(response) == (415, "unsupported_media_type")
    multipart = await client.post("/v1/analyses", files={"file": ("clip.exe", video, "video/mp4")})
    assert error_of(multipart) == (415, "unsupported_media_type")


async def test_errors_have_one_shape(client: httpx.AsyncClient) -> None:
    missing_field = await client.post("/v1/analyses", json={"callback_url": None})
    wrong_type = await client.post("/v1/analyses", json={"key": 7})
    bad_wait = await client.get(f"/v1/analyses/{uuid.uuid4()}", params={"wait": 61})
    no_route = await client.get("/v1/nothing-here")
    other_owner_or_unknown = await client.get(f"/v1/analyses/{uuid.uuid4()}")

    assert error_of(missing_field) == (422, "validation_error")
    [missing] = missing_field.json()["error"]["details"]
    assert missing["loc"] == ["body"] and "`key` or the file's `url`" in missing["message"]
    assert wrong_type.json()["error"]["details"][0]["loc"] == ["body", "key"]
    assert error_of(bad_wait) == (422, "validation_error")
    assert error_of(no_route) == (404, "not_found")
    assert error_of(other_owner_or_unknown) == (404, "analysis_not_found")


async def test_status_events_move_the_analysis_to_completed(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)

    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    processing = await wait_until(client, job_id, lambda body: body["status"] == "processing")
    assert processing["stage"] == "transcribe" and processing["result"] is None

    result = result_of_one_utterance()
    await pipeline(AnalysisCompleted(job_id=job_id, result=result))
    completed = (await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})).json()

    assert completed["status"] == "completed" and completed["completed_at"] is not None
    assert AnalysisResult.model_validate(completed["result"]) == result
    listed = (await client.get("/v1/analyses", params={"limit": 100})).json()
    assert str(job_id) in [item["id"] for item in listed["items"]] and listed["total"] >= 1


async def test_a_failure_event_fails_the_analysis_with_stage_and_reason(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)

    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.ENCODE_AUDIO, service="audio_encoder"))
    reason = "the video has no audio track"
    await pipeline(
        AnalysisFailed(job_id=job_id, stage=Stage.ENCODE_AUDIO, code="no_audio_track", reason=reason)
    )
    failed = (await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})).json()

    assert failed["status"] == "failed" and failed["stage"] == "encode_audio"
    assert failed["error"] == {"code": "no_audio_track", "stage": "encode_audio", "message": reason}


async def test_a_status_message_no_one_can_read_fails_its_analysis_and_the_stream_moves_on(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any], kafka_bootstrap: str
) -> None:
    """Bad JSON, a body that is no status event, a ticket to another job's body: on each status topic the
    gateway reads it once, fails its analysis where it stands, dead-letters it by place and reason, and
    still applies the events behind it."""
    jobs = [await new_analysis(client, video) for _ in range(4)]
    await pipeline(AnalysisProgress(job_id=jobs[1], stage=Stage.ENCODE_AUDIO, service="audio_encoder"))
    await wait_until(client, jobs[1], lambda body: body["stage"] == "encode_audio")
    other = f"_payloads/{uuid.uuid4()}/analysis.completed/x.json"
    stolen = {"bucket": "uploads", "key": other, "size": 2, "sha256": "0" * 64}
    poisons = {
        jobs[0]: (Stage.UPLOAD, "analysis.progress", b"{not json", "event_unreadable"),
        jobs[1]: (
            Stage.ENCODE_AUDIO,
            "analysis.completed",
            json.dumps({"job_id": str(jobs[1]), "attempt": 1, "result": "none"}).encode(),
            "event_unreadable",
        ),
        jobs[2]: (
            Stage.UPLOAD,
            "analysis.failed",
            json.dumps({"claim_check": stolen, "job_id": str(jobs[2]), "attempt": 1}).encode(),
            "payload_unreadable",
        ),
    }
    dead: list[bytes] = []
    consumer = AIOKafkaConsumer("analysis.dead_letter", bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        await consumer.seek_to_end()
        broker = KafkaBroker(kafka_bootstrap)
        async with broker:
            await broker.start()
            for job, (_, topic, raw, _) in poisons.items():
                await broker.publish(raw, topic=topic, key=str(job).encode())
        await pipeline(AnalysisProgress(job_id=jobs[3], stage=Stage.TRANSCRIBE, service="transcriber"))
        for job, (stage, _, _, code) in poisons.items():
            failed = await wait_until(client, job, lambda body: body["status"] == "failed")
            assert failed["error"]["code"] == code and failed["stage"] == stage.value
        await wait_until(client, jobs[3], lambda body: body["status"] == "processing")
        deadline = time.monotonic() + STATUS_TIMEOUT_S
        while len(dead) < len(poisons) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            dead += [
                r.value for rs in batches.values() for r in rs if r.key in {str(j).encode() for j in poisons}
            ]
    finally:
        await consumer.stop()
    letters = [DeadLettered.model_validate_json(raw) for raw in dead]
    assert {(d.job_id, d.topic, d.code) for d in letters} == {
        (job, topic, code) for job, (_, topic, _, code) in poisons.items()
    }
    assert not any(b"claim_check" in raw or b"not json" in raw for raw in dead)  # place and reason only


async def test_long_poll_returns_as_soon_as_the_analysis_completes(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)
    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.FUSE, service="fusion"))
    await wait_until(client, job_id, lambda body: body["stage"] == "fuse")

    started = time.monotonic()
    timed_out = (await client.get(f"/v1/analyses/{job_id}", params={"wait": 0.5})).json()
    assert timed_out["status"] == "processing" and 0.5 <= time.monotonic() - started < 3

    polling = asyncio.create_task(client.get(f"/v1/analyses/{job_id}", params={"wait": 60}))
    try:
        await asyncio.sleep(0.5)
        assert not polling.done()
        await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
        response = await asyncio.wait_for(polling, timeout=10)  # far below the fallback re-check
    finally:
        polling.cancel()

    assert response.json()["status"] == "completed"


async def test_waiting_survives_a_lost_listen_connection(
    client: httpx.AsyncClient, video: bytes, gateway: Gateway, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)
    async with gateway.engine.connect() as admin:
        killed = await admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE :listen"
            ),
            {"listen": "LISTEN %"},  # the process's one LISTEN connection, whichever channel it named last
        )
    assert killed == 1

    polling = asyncio.create_task(client.get(f"/v1/analyses/{job_id}", params={"wait": 60}))
    try:
        await asyncio.sleep(0.3)
        await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
        response = await asyncio.wait_for(polling, timeout=STATUS_TIMEOUT_S)
    finally:
        polling.cancel()
    assert response.json()["status"] == "completed" and gateway.updates.listening


async def test_event_stream_delivers_changes_and_ends_on_completion(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)
    received: list[tuple[str, dict[str, Any]]] = []
    arrived = asyncio.Event()

    async def follow() -> None:
        async with client.stream("GET", f"/v1/analyses/{job_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    received.append((name, json.loads(line.removeprefix("data:"))))
                    arrived.set()

    following = asyncio.create_task(follow())

    async def wait_for_events(count: int) -> None:
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            while len(received) < count:
                arrived.clear()
                await arrived.wait()

    try:
        await wait_for_events(1)
        await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
        await wait_for_events(2)
        await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.ENCODE_VIDEO, service="video_encoder"))
        await wait_for_events(3)
        await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
        await asyncio.wait_for(following, timeout=10)  # the stream ends by itself after the final event
    finally:
        following.cancel()

    assert [(name, body["status"], body["stage"]) for name, body in received] == [
        ("status", "queued", None),
        ("status", "processing", "transcribe"),
        ("status", "processing", "encode_video"),
        ("completed", "completed", "fuse"),
    ]
    assert all("result" not in body for _, body in received[:-1])
    assert received[-1][1]["result"]["model_version"] == "test-1"


async def test_event_stream_of_an_unknown_analysis_is_404(client: httpx.AsyncClient) -> None:
    assert error_of(await client.get(f"/v1/analyses/{uuid.uuid4()}/events")) == (404, "analysis_not_found")


async def test_sweeper_redrives_a_stuck_analysis_then_fails_it(
    gateway_app: tuple[FastAPI, str],
    video: bytes,
    gateway: Gateway,
    pipeline: Callable[[Event], Any],
    requested: RequestedEvents,
) -> None:
    # An account of its own: the sweeps below may end other tests' jobs, and refund their accounts.
    account = await register(gateway_app[1])
    async with httpx.AsyncClient(
        base_url=gateway_app[1], headers={"Authorization": f"Bearer {account.key}"}, timeout=30
    ) as client:
        await _sweep_then_fail(client, video, gateway, pipeline, requested)


async def _sweep_then_fail(
    client: httpx.AsyncClient,
    video: bytes,
    gateway: Gateway,
    pipeline: Callable[[Event], Any],
    requested: RequestedEvents,
) -> None:
    job_id = await new_analysis(client, video)
    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    await wait_until(client, job_id, lambda body: body["stage"] == "transcribe")

    async def sweep() -> Any:
        return await sweep_once(sessions=gateway.sessions, stuck_after_s=0.2, max_attempts=2)

    await asyncio.sleep(0.3)
    report = await sweep_if_leader(gateway.engine, sweep)

    assert report is not None and job_id in [job.id for job in report.redriven]
    redriven = (await client.get(f"/v1/analyses/{job_id}")).json()
    assert (redriven["status"], redriven["stage"], redriven["attempt"]) == ("queued", None, 2)
    assert [event.attempt for event in await requested.wait_for(job_id, count=2)] == [1, 2]

    # The first attempt's late failure says nothing about the second.
    await pipeline(AnalysisFailed(job_id=job_id, stage=Stage.TRANSCRIBE, code="internal_error", reason="old"))
    await pipeline(
        AnalysisProgress(job_id=job_id, attempt=2, stage=Stage.ENCODE_VIDEO, service="video_encoder")
    )
    await wait_until(client, job_id, lambda body: body["stage"] == "encode_video")

    sweeping = asyncio.create_task(run_sweeper(gateway.engine, sweep, interval_s=0.1))
    try:
        failed = (await client.get(f"/v1/analyses/{job_id}", params={"wait": 10})).json()
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
    assert (failed["status"], failed["attempt"]) == ("failed", 2)
    # It timed out in a stage, with work spent on it: its units are not given back.
    assert (await client.get("/v1/usage")).json()["analyses"]["used"] == 1
    assert failed["error"]["code"] == "timeout" and failed["error"]["stage"] == "encode_video"
    assert "encode_video" in failed["error"]["message"]


async def test_only_one_replica_sweeps_at_a_time(gateway: Gateway) -> None:
    async def sweep() -> Any:
        raise AssertionError("swept without the lock")

    async with gateway.engine.connect() as other_replica:
        assert await other_replica.scalar(select(func.pg_try_advisory_lock(SWEEPER_LOCK_KEY)))
        await other_replica.commit()
        assert await sweep_if_leader(gateway.engine, sweep) is None
        await other_replica.scalar(select(func.pg_advisory_unlock(SWEEPER_LOCK_KEY)))
        await other_replica.commit()


async def test_health_readiness_metrics_and_openapi(client: httpx.AsyncClient, gateway: Gateway) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "object_store": "ok"}

    assert (await client.get("/metrics")).status_code == 404  # not on the API's port
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{gateway.settings.metrics_port}/metrics")).text
    assert 'ea_gateway_request_seconds_count{method="POST",route="/v1/analyses",status="201"}' in metrics
    assert 'ea_gateway_jobs_created_total{upload="multipart"} 1.0' in metrics
    assert 'ea_gateway_events_consumed_total{outcome="applied",type="AnalysisCompleted"}' in metrics

    schema = (await client.get("/openapi.json")).json()
    assert {
        "/v1/upload-url",
        "/v1/analyses",
        "/v1/analyses/{analysis_id}",
        "/v1/analyses/{analysis_id}/events",
    } <= set(schema["paths"])
    assert (await client.get("/docs")).status_code == 200


async def test_unclaimed_uploads_expire_and_frozen_copies_stay(
    client: httpx.AsyncClient, account: Account, video: bytes, object_store: ObjectStore
) -> None:
    unclaimed = await upload(client, "never analysed.mp4", video)
    analysed = await analyse(client, await upload(client, "analysed.mp4", video))
    frozen = [key for key in object_store.list_keys("uploads", f"media/{account.id}/") if "analysed" in key]
    assert frozen and object_store.exists("uploads", unclaimed)

    mine = f"uploads/{account.id}/"  # other tests' uploads are theirs
    assert expire_unclaimed_uploads(object_store, "uploads", timedelta(hours=1), mine) == []
    expired = expire_unclaimed_uploads(object_store, "uploads", timedelta(0), mine)
    assert unclaimed in expired and all(key.startswith(mine) for key in expired)

    assert not object_store.exists("uploads", unclaimed)
    assert object_store.exists("uploads", frozen[0])
    assert (await client.get(f"/v1/analyses/{analysed['id']}")).status_code == 200
    assert error_of(await client.post("/v1/analyses", json={"key": unclaimed})) == (404, "unknown_key")


async def test_an_overlong_credential_is_401_not_500(gateway_app: tuple[FastAPI, str]) -> None:
    base_url = gateway_app[1]
    long = "ea_" + "x" * 5000
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        by_header = await http.get("/v1/analyses", headers={"Authorization": f"Bearer {long}"})
        by_cookie = await http.get("/v1/analyses", headers={"Cookie": f"ea_session={long}"})
        relayed = await http.get("/v1/keys", headers={"Authorization": f"Bearer {long}"})
    for answer in (by_header, by_cookie, relayed):
        assert error_of(answer) == (401, "unauthorized"), answer.text


async def test_the_number_of_speakers_is_checked_and_goes_to_the_transcriber(
    client: httpx.AsyncClient, video: bytes, wav: bytes, requested: RequestedEvents
) -> None:
    key = await upload(client, "panel.mp4", video)
    for wrong in (0, 21, "two", 2.5):
        refused = await client.post("/v1/analyses", json={"key": key, "speakers": wrong})
        assert error_of(refused) == (422, "validation_error"), wrong
        assert refused.json()["error"]["details"][0]["loc"] == ["body", "speakers"]
        sent = await client.post(
            "/v1/analyses", files={"file": ("memo.wav", wav, "audio/wav")}, data={"speakers": str(wrong)}
        )
        assert error_of(sent) == (422, "validation_error"), wrong
        assert sent.json()["error"]["details"][0]["loc"] == ["body", "speakers"]
    by_key = await client.post("/v1/analyses", json={"key": key, "speakers": 3})
    by_form = await client.post(
        "/v1/analyses", files={"file": ("memo.wav", wav, "audio/wav")}, data={"speakers": "2"}
    )
    unsaid = await analyse(client, await upload(client, "alone.mp4", video))

    assert by_key.status_code == 201 and by_key.json()["speakers"] == 3
    assert by_form.status_code == 201 and by_form.json()["speakers"] == 2
    assert unsaid["speakers"] is None
    for answer, people in ((by_key.json(), 3), (by_form.json(), 2), (unsaid, None)):
        [event] = await requested.wait_for(uuid.UUID(answer["id"]))
        assert event.speakers == people
