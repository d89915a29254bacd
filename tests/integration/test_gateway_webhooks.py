"""Webhooks through the gateway's API, with the real auth service, broker, PostgreSQL and a real receiver on
loopback that verifies every signature with the independent `standardwebhooks` implementation."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from emotion_contract.events import AnalysisCompleted, AnalysisProgress, Event, Stage
from services.gateway.main import create_app
from services.gateway.settings import Settings
from tests.integration.gateway_fixtures import Account, error_of, register, result_of_one_utterance, upload
from tests.servers import serve_app
from tests.webhook_receiver import Plan, Receiver, running_receiver

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]

ARRIVAL_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


@pytest.fixture
async def alice(gateway_app: tuple[FastAPI, str]) -> AsyncIterator[httpx.AsyncClient]:
    account = await register(gateway_app[1])
    headers = {"Authorization": f"Bearer {account.key}"}
    async with httpx.AsyncClient(base_url=gateway_app[1], headers=headers, timeout=30) as client:
        yield client


async def subscribe(
    client: httpx.AsyncClient, receiver: Receiver, events: list[str], plan: Plan | None = None
) -> dict[str, Any]:
    url = receiver.endpoint(plan)
    created = await client.post("/v1/webhooks", json={"url": url, "events": events})
    assert created.status_code == 201, created.text
    webhook: dict[str, Any] = created.json()
    assert webhook["secret"].startswith("whsec_")
    receiver.expect(url, webhook["secret"])
    return webhook


async def deliveries_settled(client: httpx.AsyncClient, webhook_id: str, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(ARRIVAL_TIMEOUT_S):
        while True:
            items: list[dict[str, Any]] = (await client.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()[
                "items"
            ]
            if len(items) >= count and all(item["status"] != "pending" for item in items):
                return items
            await asyncio.sleep(0.1)


async def test_an_analysis_is_announced_signed_at_each_event(
    alice: httpx.AsyncClient,
    receiver: Receiver,
    wav: bytes,
    pipeline: Callable[[Event], Any],
) -> None:
    webhook = await subscribe(alice, receiver, ["analysis.progress", "analysis.completed"])
    assert "secret" not in (await alice.get(f"/v1/webhooks/{webhook['id']}")).json()
    assert [item["id"] for item in (await alice.get("/v1/webhooks")).json()["items"]] == [webhook["id"]]

    submitted = await alice.post("/v1/analyses", files={"file": ("memo.wav", wav, "audio/wav")})
    job_id = uuid.UUID(submitted.json()["id"])
    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    await receiver.arrivals(webhook["url"], 1, ARRIVAL_TIMEOUT_S)
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
    progress, completed = await receiver.arrivals(webhook["url"], 2, ARRIVAL_TIMEOUT_S)

    assert progress.verified and completed.verified
    assert progress.json["type"] == "analysis.progress"
    assert progress.json["data"]["stage"] == "transcribe" and progress.json["data"]["id"] == str(job_id)
    assert completed.json["type"] == "analysis.completed"
    assert completed.json["data"]["result"]["utterances"][0]["text"] == "hello there"
    assert progress.headers["webhook-id"] != completed.headers["webhook-id"]

    listed = await deliveries_settled(alice, webhook["id"], 2)
    assert {item["status"] for item in listed} == {"delivered"}
    events = {item["event_id"] for item in listed}
    assert events == {progress.headers["webhook-id"], completed.headers["webhook-id"]}


async def test_a_failing_receiver_is_retried_and_can_be_redelivered_to(
    alice: httpx.AsyncClient, receiver: Receiver
) -> None:
    webhook = await subscribe(alice, receiver, ["analysis.completed"], Plan(fail_first=2))
    sent = await alice.post(f"/v1/webhooks/{webhook['id']}/test")
    assert sent.status_code == 202

    first, second, third = await receiver.arrivals(webhook["url"], 3, ARRIVAL_TIMEOUT_S)
    assert first.json["type"] == "webhook.test" and all(r.verified for r in (first, second, third))
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]
    [delivery] = await deliveries_settled(alice, webhook["id"], 1)
    assert delivery["status"] == "delivered"
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in delivery["attempts"]] == [
        (1, 503, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert delivery["attempts"][0]["response_body"] == "try again later"

    again = await alice.post(f"/v1/webhooks/{webhook['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202
    fourth = (await receiver.arrivals(webhook["url"], 4, ARRIVAL_TIMEOUT_S))[3]
    assert fourth.headers["webhook-id"] == first.headers["webhook-id"] and fourth.verified


async def test_test_sends_and_redeliveries_are_bounded_per_account(
    gateway_settings: Settings, gateway_app: tuple[FastAPI, str], receiver: Receiver
) -> None:
    """A receiver that keeps failing: the owner's deliveries wait for their retries, and past its cap of
    waiting deliveries a test send or a redelivery is refused; past the per-minute limit, any further one."""
    capped = gateway_settings.model_copy(
        update={
            "service_name": "gateway-webhook-caps",
            "webhook_dispatcher": False,
            "webhook_max_pending_per_owner": 2,
            "webhook_manual_sends_per_minute": 4,
        }
    )
    account = await register(gateway_app[1])
    headers = {"Authorization": f"Bearer {account.key}"}
    async with (
        serve_app(create_app(capped)) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as client,
    ):
        webhook = await subscribe(client, receiver, ["analysis.completed"], Plan(fail_first=1000))
        base = f"/v1/webhooks/{webhook['id']}"
        assert [(await client.post(f"{base}/test")).status_code for _ in range(2)] == [202, 202]
        full = await client.post(f"{base}/test")
        assert error_of(full) == (429, "too_many_pending_deliveries") and full.headers["retry-after"]
        [delivery, *_] = (await client.get(f"{base}/deliveries")).json()["items"]
        queued = await client.post(f"{base}/deliveries/{delivery['id']}/redeliver")
        assert error_of(queued) == (429, "too_many_pending_deliveries")
        limited = await client.post(f"{base}/test")
        assert error_of(limited) == (429, "rate_limited") and int(limited.headers["retry-after"]) > 0


async def test_bad_webhook_urls_are_refused(alice: httpx.AsyncClient) -> None:
    for url in ("ftp://example.com/hook", "not a url", "http://user:pw@example.com/hook"):
        answer = await alice.post("/v1/webhooks", json={"url": url, "events": ["analysis.completed"]})
        assert error_of(answer) == (422, "invalid_webhook_url"), url
    unknown_event = await alice.post(
        "/v1/webhooks", json={"url": "https://example.com/h", "events": ["analysis.deleted"]}
    )
    assert error_of(unknown_event) == (422, "validation_error")


async def test_no_user_can_see_or_use_another_users_webhooks(
    alice: httpx.AsyncClient, receiver: Receiver, gateway_app: tuple[FastAPI, str]
) -> None:
    webhook = await subscribe(alice, receiver, ["analysis.completed"])
    await alice.post(f"/v1/webhooks/{webhook['id']}/test")
    [delivery] = await deliveries_settled(alice, webhook["id"], 1)

    mallory: Account = await register(gateway_app[1])
    headers = {"Authorization": f"Bearer {mallory.key}"}
    async with httpx.AsyncClient(base_url=gateway_app[1], headers=headers) as as_mallory:
        base = f"/v1/webhooks/{webhook['id']}"
        attempts = [
            await as_mallory.get(base),
            await as_mallory.post(f"{base}/test"),
            await as_mallory.get(f"{base}/deliveries"),
            await as_mallory.get(f"{base}/deliveries/{delivery['id']}"),
            await as_mallory.post(f"{base}/deliveries/{delivery['id']}/redeliver"),
            await as_mallory.delete(base),
        ]
        assert [answer.status_code for answer in attempts] == [404] * len(attempts)
        assert (await as_mallory.get("/v1/webhooks")).json()["items"] == []
    assert (await alice.get(f"/v1/webhooks/{webhook['id']}")).status_code == 200
    assert (await alice.delete(f"/v1/webhooks/{webhook['id']}")).status_code == 204
    assert (await alice.get(f"/v1/webhooks/{webhook['id']}")).status_code == 404


# --- a callback per analysis ---------------------------------------------------------------------------


async def test_an_analysis_created_with_a_callback_announces_its_end_there_and_only_its_own(
    alice: httpx.AsyncClient, receiver: Receiver, wav: bytes, pipeline: Callable[[Event], Any]
) -> None:
    url = receiver.endpoint()
    created = await alice.post(
        "/v1/analyses", files={"file": ("memo.wav", wav, "audio/wav")}, data={"callback_url": url}
    )
    assert created.status_code == 201, created.text
    callback = created.json()["callback"]
    assert callback["url"] == url and callback["secret"].startswith("whsec_")
    receiver.expect(url, callback["secret"])
    job_id = uuid.UUID(created.json()["id"])
    other = uuid.UUID(
        (await alice.post("/v1/analyses", files={"file": ("b.wav", wav, "audio/wav")})).json()["id"]
    )

    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    await pipeline(AnalysisCompleted(job_id=other, result=result_of_one_utterance()))
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
    [completed] = await receiver.arrivals(url, 1, ARRIVAL_TIMEOUT_S)

    assert completed.verified and completed.json["type"] == "analysis.completed"
    assert completed.json["data"]["id"] == str(job_id)
    await asyncio.sleep(1.0)  # neither the progress nor the other analysis' completion comes
    assert len(receiver.at(url)) == 1
    [delivery] = await deliveries_settled(alice, callback["webhook_id"], 1)
    assert delivery["status"] == "delivered" and delivery["analysis_id"] == str(job_id)
    assert callback["webhook_id"] not in [
        item["id"] for item in (await alice.get("/v1/webhooks")).json()["items"]
    ]
    assert (await alice.get(f"/v1/analyses/{job_id}")).json()["callback"] is None  # the secret, once


async def test_a_callback_url_is_checked_like_a_webhooks_and_goes_with_its_analysis(
    alice: httpx.AsyncClient, receiver: Receiver, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    key = await upload(alice, "clip.mp4", video)
    before = (await alice.get("/v1/analyses")).json()["total"]
    for bad in ("ftp://example.com/hook", "https://user:pw@example.com/hook", "http://[::1"):
        refused = await alice.post("/v1/analyses", json={"key": key, "callback_url": bad})
        assert error_of(refused) == (422, "invalid_callback_url"), bad
    assert (await alice.get("/v1/analyses")).json()["total"] == before

    created = await alice.post("/v1/analyses", json={"key": key, "callback_url": receiver.endpoint()})
    assert created.status_code == 201, created.text
    again = await alice.post("/v1/analyses", json={"key": key, "callback_url": receiver.endpoint()})
    assert again.status_code == 200 and again.json()["callback"] is None  # the same analysis, as it was
    webhook_id = created.json()["callback"]["webhook_id"]
    assert (await alice.get(f"/v1/webhooks/{webhook_id}")).status_code == 200

    job_id = uuid.UUID(created.json()["id"])
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
    await alice.get(f"/v1/analyses/{job_id}", params={"wait": ARRIVAL_TIMEOUT_S})
    assert (await alice.delete(f"/v1/analyses/{job_id}")).status_code == 204
    assert error_of(await alice.get(f"/v1/webhooks/{webhook_id}")) == (404, "webhook_not_found")
