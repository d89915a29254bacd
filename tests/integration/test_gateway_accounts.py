"""Accounts through the gateway: sign-up, sessions, key lifecycle, quotas, rate limits, tenant isolation
and deletion, against the real auth service, PostgreSQL, broker and S3 server."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from emotion_contract.events import AnalysisCompleted, AnalysisFailed, AnalysisProgress, Event, Stage
from emotion_contract.labels import Modality
from services.fusion.parts import put_part
from services.gateway.main import create_app
from services.gateway.settings import Settings
from services.gateway.state import Gateway
from shared.storage import ObjectStore
from tests.integration.db_fixtures import tables_mentioning
from tests.integration.gateway_fixtures import (
    AUTH_CACHE_TTL_S,
    KEY_CAP,
    Account,
    RequestedEvents,
    error_of,
    post_upload,
    register,
    result_of_one_utterance,
    wait_until,
)
from tests.servers import serve_app

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]


@pytest.fixture
def base_url(gateway_app: tuple[FastAPI, str]) -> str:
    return gateway_app[1]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def set_limits(gateway: Gateway, account: Account, **limits: int) -> None:
    """What an operator does for a customer's plan: the account's own limits instead of the defaults."""
    assignments = ", ".join(f"{name} = :{name}" for name in limits)
    async with gateway.engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE user_account SET {assignments} WHERE id = :id"), {**limits, "id": account.id}
        )


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def logged_in(http: httpx.AsyncClient, account: Account) -> str:
    """A session token of the account: what creates API keys."""
    login = await http.post("/v1/sessions", json={"email": account.email, "password": account.password})
    assert login.status_code == 201, login.text
    token: str = login.json()["access_token"]
    return token


async def submit_wav(http: httpx.AsyncClient, key: str, wav: bytes, name: str = "memo.wav") -> httpx.Response:
    return await http.post("/v1/analyses", headers=bearer(key), files={"file": (name, wav, "audio/wav")})


# --- sign-up, sessions, keys ---------------------------------------------------------------------------


async def test_sign_up_gives_a_working_key_and_a_second_sign_up_is_refused(
    http: httpx.AsyncClient, base_url: str
) -> None:
    account = await register(base_url)
    me = await http.get("/v1/users/me", headers=bearer(account.key))
    assert me.status_code == 200 and me.json()["email"] == account.email
    assert (await http.get("/v1/analyses", headers=bearer(account.key))).status_code == 200

    again = await http.post(
        "/v1/users", json={"email": account.email.upper(), "password": "another password"}
    )
    assert error_of(again) == (409, "email_taken")
    weak = await http.post("/v1/users", json={"email": "x@example.com", "password": "short"})
    not_an_email = await http.post("/v1/users", json={"email": "not-an-email", "password": "long enough pw"})
    assert error_of(weak) == (422, "validation_error") and error_of(not_an_email) == (422, "validation_error")


async def test_login_session_works_like_a_key_until_logout(http: httpx.AsyncClient, base_url: str) -> None:
    account = await register(base_url)
    wrong = await http.post("/v1/sessions", json={"email": account.email, "password": "not the password"})
    unknown = await http.post("/v1/sessions", json={"email": "nobody@example.com", "password": "whatever pw"})
    assert error_of(wrong) == error_of(unknown) == (401, "invalid_credentials")
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]

    login = await http.post("/v1/sessions", json={"email": account.email, "password": account.password})
    assert login.status_code == 201, login.text
    token = login.json()["access_token"]
    assert (await http.get("/v1/analyses", headers=bearer(token))).status_code == 200
    assert (await http.get("/v1/keys", headers=bearer(token))).status_code == 200

    assert (await http.delete("/v1/sessions/current", headers=bearer(token))).status_code == 204
    assert error_of(await http.get("/v1/analyses", headers=bearer(token))) == (401, "unauthorized")


async def test_key_lifecycle_create_list_use_revoke(http: httpx.AsyncClient, base_url: str) -> None:
    account = await register(base_url)
    minted = await http.post("/v1/keys", headers=bearer(account.key), json={"name": "ci"})
    assert error_of(minted) == (403, "session_required")  # a key cannot mint keys
    created = await http.post("/v1/keys", headers=bearer(await logged_in(http, account)), json={"name": "ci"})
    assert created.status_code == 201, created.text
    new_key = created.json()
    assert new_key["key"].startswith(new_key["prefix"]) and new_key["name"] == "ci"
    assert (await http.get("/v1/analyses", headers=bearer(new_key["key"]))).status_code == 200

    listed = (await http.get("/v1/keys", headers=bearer(account.key))).json()["items"]
    assert {item["name"] for item in listed} == {"default", "ci"}
    assert all("key" not in item for item in listed)  # the secret is shown once, at creation
    used = next(item for item in listed if item["id"] == new_key["id"])
    assert used["last_used_at"] is not None

    revoked = await http.delete(f"/v1/keys/{new_key['id']}", headers=bearer(account.key))
    assert revoked.status_code == 204
    assert error_of(await http.get("/v1/analyses", headers=bearer(new_key["key"]))) == (401, "unauthorized")
    assert (await http.get("/v1/analyses", headers=bearer(account.key))).status_code == 200


async def test_a_key_revoked_elsewhere_stops_working_within_the_cache_lifetime(
    http: httpx.AsyncClient, base_url: str, auth_url: str
) -> None:
    account = await register(base_url)
    assert (await http.get("/v1/analyses", headers=bearer(account.key))).status_code == 200  # now cached
    keys = (await http.get("/v1/keys", headers=bearer(account.key))).json()["items"]
    # Revoked at the auth service directly, as through another gateway replica: this one is not told.
    token = await logged_in(http, account)
    async with httpx.AsyncClient(base_url=auth_url) as auth:
        created = await auth.post("/v1/keys", headers=bearer(token), json={"name": "spare"})
        spare = created.json()["key"]
        assert (await auth.delete(f"/v1/keys/{keys[0]['id']}", headers=bearer(spare))).status_code == 204
    await asyncio.sleep(AUTH_CACHE_TTL_S + 0.2)
    assert error_of(await http.get("/v1/analyses", headers=bearer(account.key))) == (401, "unauthorized")


# --- quotas and rate limits ----------------------------------------------------------------------------


async def test_concurrent_submissions_against_a_quota_of_n_accept_exactly_n(
    http: httpx.AsyncClient,
    base_url: str,
    gateway: Gateway,
    wav: bytes,
    pipeline: Callable[[Event], Any],
) -> None:
    account = await register(base_url)
    await set_limits(gateway, account, monthly_analyses=3)

    answers = await asyncio.gather(*(submit_wav(http, account.key, wav, f"m{n}.wav") for n in range(12)))

    assert sorted(answer.status_code for answer in answers) == [201] * 3 + [429] * 9
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert error_of(refused) == (429, "quota_exceeded")
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["ratelimit-limit"] == "3" and refused.headers["ratelimit-remaining"] == "0"
    assert 'name="analyses"' in refused.headers["ratelimit-policy"]
    listed = (await http.get("/v1/analyses", headers=bearer(account.key))).json()
    assert listed["total"] == 3  # the refused requests left no analysis behind

    usage = (await http.get("/v1/usage", headers=bearer(account.key))).json()
    assert usage["analyses"] == {"used": 3, "limit": 3, "remaining": 0}
    assert usage["video_seconds"]["used"] == pytest.approx(3 * 0.5, abs=0.01)  # three half-second files

    # A failed analysis gives its units back.
    failed_id = uuid.UUID(next(answer for answer in answers if answer.status_code == 201).json()["id"])
    await pipeline(
        AnalysisFailed(job_id=failed_id, stage=Stage.TRANSCRIBE, code="corrupt_media", reason="damaged")
    )
    client = httpx.AsyncClient(base_url=base_url, headers=bearer(account.key))
    async with client:
        await wait_until(client, failed_id, lambda body: body["status"] == "failed")
        usage = (await client.get("/v1/usage")).json()
    assert usage["analyses"]["used"] == 2
    assert (await submit_wav(http, account.key, wav, "again.wav")).status_code == 201


async def test_the_seconds_quota_refuses_a_file_longer_than_what_is_left(
    http: httpx.AsyncClient, base_url: str, gateway: Gateway, wav: bytes, object_store: ObjectStore
) -> None:
    account = await register(base_url)
    await set_limits(gateway, account, monthly_video_seconds=1)
    assert (await submit_wav(http, account.key, wav, "a.wav")).status_code == 201
    assert (await submit_wav(http, account.key, wav, "b.wav")).status_code == 201
    refused = await submit_wav(http, account.key, wav, "c.wav")
    assert error_of(refused) == (429, "quota_exceeded")
    assert 'name="video_seconds"' in refused.headers["ratelimit-policy"]
    # The refused file, sent in the request, is not left in storage without an analysis.
    assert len(object_store.list_keys("uploads", f"media/{account.id}/")) == 2


async def test_over_the_rate_limit_is_429_with_retry_after_and_ratelimit_headers(
    http: httpx.AsyncClient, base_url: str, gateway: Gateway
) -> None:
    account = await register(base_url)
    await set_limits(gateway, account, rate_limit_per_minute=2)
    first = await http.get("/v1/analyses", headers=bearer(account.key))
    second = await http.get("/v1/analyses", headers=bearer(account.key))
    third = await http.get("/v1/analyses", headers=bearer(account.key))
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert second.status_code == 200 and second.headers["ratelimit-remaining"] == "0"
    assert error_of(third) == (429, "rate_limited")
    assert 1 <= int(third.headers["retry-after"]) <= 30
    assert third.headers["ratelimit-remaining"] == "0" and third.headers["ratelimit-policy"] == "2;w=60"


async def test_more_keys_do_not_buy_more_rate_and_relayed_account_routes_are_limited_too(
    http: httpx.AsyncClient, base_url: str, gateway: Gateway
) -> None:
    account = await register(base_url)
    token = await logged_in(http, account)
    second = (await http.post("/v1/keys", json={"name": "second"}, headers=bearer(token))).json()["key"]
    await set_limits(gateway, account, rate_limit_per_minute=4)
    await asyncio.sleep(AUTH_CACHE_TTL_S + 0.5)  # the cached limits expire
    statuses = [
        (await http.get("/v1/analyses", headers=bearer(key))).status_code for key in [account.key, second] * 3
    ]
    # Each credential has its own cell, and the account one shared by both: four, not eight.
    assert statuses == [200, 200, 200, 200, 429, 429]
    # The routes relayed to the auth service are counted as well.
    assert error_of(await http.get("/v1/keys", headers=bearer(second))) == (429, "rate_limited")
    assert error_of(await http.get("/v1/users/me", headers=bearer(account.key))) == (429, "rate_limited")


async def test_an_account_holds_a_bounded_number_of_keys(http: httpx.AsyncClient, base_url: str) -> None:
    account = await register(base_url)
    token = await logged_in(http, account)
    created = [
        await http.post("/v1/keys", json={"name": f"k{i}"}, headers=bearer(token)) for i in range(KEY_CAP)
    ]
    assert [answer.status_code for answer in created] == [201] * (KEY_CAP - 1) + [409]
    assert error_of(created[-1])[1] == "too_many_keys"
    revoked = created[0].json()["id"]
    assert (await http.delete(f"/v1/keys/{revoked}", headers=bearer(account.key))).status_code == 204
    again = await http.post("/v1/keys", json={"name": "again"}, headers=bearer(token))
    assert again.status_code == 201
    keys = (await http.get("/v1/keys", headers=bearer(account.key))).json()["items"]
    assert sum(1 for key in keys if key["revoked_at"] is None) == KEY_CAP


async def test_an_address_whose_credentials_keep_being_rejected_is_refused_without_asking(
    gateway_settings: Settings, base_url: str
) -> None:
    """Guessed keys: past three rejected a minute, the address gets 429 for any credential this replica has
    not checked yet, and the auth service is not asked about them; a key already checked still works."""
    capped = Settings.model_validate(
        {
            **gateway_settings.model_dump(),
            "service_name": "gateway-guesses",
            "rejected_credentials_per_minute": 3,
        }
    )
    account = await register(base_url)
    app = create_app(capped)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/v1/analyses", headers=bearer(account.key))).status_code == 200  # checked
        guesses = [f"ea_{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex}" for _ in range(5)]
        answers = [await client.get("/v1/analyses", headers=bearer(guess)) for guess in guesses]
        assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
        assert error_of(answers[-1]) == (429, "rate_limited") and int(answers[-1].headers["retry-after"]) > 0
        rejected = app.state.gateway.registry.get_sample_value(
            "ea_gateway_auth_checks_total", {"outcome": "rejected"}
        )
        assert rejected == 3  # the refused guesses were never introspected
        assert (await client.get("/v1/analyses", headers=bearer(account.key))).status_code == 200


async def test_an_account_follows_a_bounded_number_of_analyses_at_once(
    gateway_settings: Settings, base_url: str, wav: bytes
) -> None:
    capped = Settings.model_validate(
        {**gateway_settings.model_dump(), "service_name": "gateway-capped", "max_watches_per_account": 2}
    )
    account = await register(base_url)
    async with serve_app(create_app(capped)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        ids = [(await submit_wav(client, account.key, wav, f"{i}.wav")).json()["id"] for i in range(2)]
        path = f"/v1/analyses/{ids[0]}/events"
        async with (
            client.stream("GET", path, headers=bearer(account.key)) as first,
            client.stream("GET", f"/v1/analyses/{ids[1]}/events", headers=bearer(account.key)) as second,
        ):
            assert first.status_code == second.status_code == 200
            third = await client.get(path, headers=bearer(account.key))
            assert error_of(third) == (429, "too_many_watches") and third.headers["retry-after"] == "5"
            poll = await client.get(f"/v1/analyses/{ids[0]}", params={"wait": 1}, headers=bearer(account.key))
            assert error_of(poll) == (429, "too_many_watches")
            plain = await client.get(f"/v1/analyses/{ids[0]}", headers=bearer(account.key))
            assert plain.status_code == 200  # a plain read holds nothing
        # The closed streams give their slots back (once the server has seen them close).
        for _ in range(100):
            again = await client.get(
                f"/v1/analyses/{ids[0]}", params={"wait": 0.2}, headers=bearer(account.key)
            )
            if again.status_code == 200:
                break
        assert again.status_code == 200


async def test_the_rate_limit_holds_across_gateway_replicas(
    base_url: str, gateway: Gateway, gateway_settings: Settings
) -> None:
    account = await register(base_url)
    await set_limits(gateway, account, rate_limit_per_minute=4)
    # A second replica: its own consumer group, the same database (where the limit's cells live).
    replica = gateway_settings.model_copy(
        update={"service_name": "gateway-replica", "webhook_dispatcher": False}
    )
    async with serve_app(create_app(replica)) as replica_url, httpx.AsyncClient(timeout=30) as http:
        statuses = [
            (await http.get(f"{url}/v1/analyses", headers=bearer(account.key))).status_code
            for url in [base_url, replica_url] * 3
        ]
    # Per replica the limit would have allowed all six (three each).
    assert statuses == [200, 200, 200, 200, 429, 429]


# --- isolation and deletion ----------------------------------------------------------------------------


async def test_no_user_can_touch_another_users_analyses_uploads_or_keys(
    http: httpx.AsyncClient, base_url: str, wav: bytes, object_store: ObjectStore
) -> None:
    alice, mallory = await register(base_url), await register(base_url)
    submitted = await submit_wav(http, alice.key, wav)
    assert submitted.status_code == 201
    job_id = submitted.json()["id"]
    alice_key_id = (await http.get("/v1/keys", headers=bearer(alice.key))).json()["items"][0]["id"]
    upload = await http.post("/v1/upload-url", headers=bearer(alice.key), json={"filename": "a.mp4"})
    alice_upload_key = upload.json()["key"]
    async with httpx.AsyncClient() as s3:
        assert (await post_upload(s3, upload.json(), wav)).status_code == 204

    as_mallory = bearer(mallory.key)
    attempts = {
        "read": await http.get(f"/v1/analyses/{job_id}", headers=as_mallory),
        "follow": await http.get(f"/v1/analyses/{job_id}/events", headers=as_mallory),
        "delete": await http.delete(f"/v1/analyses/{job_id}", headers=as_mallory),
        "analyse": await http.post("/v1/analyses", headers=as_mallory, json={"key": alice_upload_key}),
        "revoke key": await http.delete(f"/v1/keys/{alice_key_id}", headers=as_mallory),
    }
    assert {name: answer.status_code for name, answer in attempts.items()} == dict.fromkeys(attempts, 404)
    listed = (await http.get("/v1/analyses", headers=as_mallory)).json()
    assert listed["total"] == 0
    keys = (await http.get("/v1/keys", headers=as_mallory)).json()["items"]
    assert [key["id"] for key in keys] != [alice_key_id] and len(keys) == 1
    assert (await http.get("/v1/usage", headers=as_mallory)).json()["analyses"]["used"] == 0

    # Alice still has all of it.
    assert (await http.get(f"/v1/analyses/{job_id}", headers=bearer(alice.key))).status_code == 200
    assert (await http.get("/v1/analyses", headers=bearer(alice.key))).status_code == 200
    assert object_store.exists("uploads", alice_upload_key)


async def test_deleting_a_finished_analysis_removes_it_and_its_file(
    http: httpx.AsyncClient,
    gateway: Gateway,
    base_url: str,
    wav: bytes,
    object_store: ObjectStore,
    requested: RequestedEvents,
    pipeline: Callable[[Event], Any],
) -> None:
    account = await register(base_url)
    submitted = await submit_wav(http, account.key, wav)
    job_id = uuid.UUID(submitted.json()["id"])
    [event] = await requested.wait_for(job_id)
    assert object_store.exists("uploads", event.object_key)

    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    client = httpx.AsyncClient(base_url=base_url, headers=bearer(account.key))
    async with client:
        await wait_until(client, job_id, lambda body: body["status"] == "processing")
        busy = await client.delete(f"/v1/analyses/{job_id}")
        assert error_of(busy) == (409, "analysis_in_progress")

        await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
        await wait_until(client, job_id, lambda body: body["status"] == "completed")
        async with gateway.sessions() as session:
            # What fusion keeps of a job: the transcript and features, here as a redelivered late part.
            transcript = {"job_id": str(job_id), "utterances": [{"text": "my secret words"}]}
            await put_part(session=session, job_id=job_id, attempt=1, part=Modality.TEXT, payload=transcript)
            assert {"job", "utterance_result", "fusion_part"} <= set(
                await tables_mentioning(session, str(job_id))
            )
        assert (await client.delete(f"/v1/analyses/{job_id}")).status_code == 204
        async with gateway.sessions() as session:
            assert await tables_mentioning(session, str(job_id)) == {}
            assert await tables_mentioning(session, event.object_key) == {}

        assert error_of(await client.get(f"/v1/analyses/{job_id}")) == (404, "analysis_not_found")
        assert error_of(await client.delete(f"/v1/analyses/{job_id}")) == (404, "analysis_not_found")
        assert (await client.get("/v1/analyses")).json()["total"] == 0
    assert not object_store.exists("uploads", event.object_key)


async def test_sign_up_and_login_limits_hold_per_client_behind_a_proxy_and_per_email(
    gateway_settings: Settings,
) -> None:
    """Behind a trusted proxy (here: loopback) the client is the right-most untrusted X-Forwarded-For entry,
    whatever the client wrote to its left; and one e-mail gets its own budget, from any address."""
    proxied = Settings.model_validate(
        {
            **gateway_settings.model_dump(),
            "service_name": "gateway-proxied",
            "webhook_dispatcher": False,
            "trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"],
            "account_rate_limit_per_minute": 3,
            "account_email_rate_limit_per_minute": 3,
        }
    )
    credentials = {"password": "correct horse battery"}

    async def log_in(
        http: httpx.AsyncClient, client: str, email: str | None = None, spoofed: str = ""
    ) -> int:
        body = {**credentials, "email": email or f"nobody-{uuid.uuid4().hex[:12]}@example.com"}
        # What the client wrote, then what the edge proxy (untrusted: the client's hop) and an inner proxy
        # appended.
        chain = f"{spoofed}{client}, 10.1.2.3"
        answer = await http.post("/v1/sessions", json=body, headers={"X-Forwarded-For": chain})
        return answer.status_code

    async with serve_app(create_app(proxied)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        first = uuid.uuid4().int % 200 + 1
        client, neighbour = f"198.51.100.{first}", f"198.51.100.{first + 1}"
        spoofs = [f"192.0.2.{i}, " for i in range(4)]  # a fresh forged address each time does not help
        assert [await log_in(http, client, spoofed=spoof) for spoof in spoofs] == [401, 401, 401, 429]
        assert await log_in(http, neighbour) == 401  # keyed on the client, not on the proxy in front of all
        # An IPv6 client counts by its /64: a fresh address of its own network for each try does not help.
        subnet = uuid.uuid4().int % 0xFFFE
        rotated = [f"2001:db8:{first:x}:{subnet:x}::{i + 1:x}" for i in range(4)]
        assert [await log_in(http, a) for a in rotated] == [401, 401, 401, 429]
        assert await log_in(http, f"2001:db8:{first:x}:{subnet + 1:x}::1") == 401  # the next /64 is another

        victim = f"victim-{uuid.uuid4().hex[:12]}@example.com"
        attackers = [f"203.0.113.{(first + i) % 250 + 1}" for i in range(4)]
        assert [await log_in(http, a, victim) for a in attackers] == [401, 401, 401, 429]
        refused = await http.post(
            "/v1/users",
            json={**credentials, "email": victim.upper()},
            headers={"X-Forwarded-For": "192.0.2.99"},
        )
        assert error_of(refused) == (429, "rate_limited")  # the same account, whatever its case
