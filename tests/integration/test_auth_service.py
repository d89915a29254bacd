"""The auth service's API in-process (its lifespan running) against a real, migrated PostgreSQL."""

import asyncio
import contextlib
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import argon2
import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth import repository
from services.auth.main import create_app
from services.auth.settings import Settings
from services.auth.tokens import SessionClaims, SessionTokens
from shared.db.account_models import ApiKey, AuthSession, UserAccount
from shared.db.session import session_factory
from tests.servers import free_port

pytest_plugins = ["tests.integration.db_fixtures"]
pytestmark = pytest.mark.integration

CHEAP_ARGON2 = {"password_time_cost": 1, "password_memory_cost_kib": 1024, "password_parallelism": 1}
JWT_SECRET = "integration-jwt-secret-0123456789abcdef"
KEY_PEPPER = "integration-key-pepper-0123456789abcdef"
INTERNAL_TOKEN = "integration-internal-token"
PASSWORD = "correct horse battery staple"
KEY_FORMAT = re.compile(r"ea_[0-9A-Za-z]{8}_[0-9A-Za-z]{32}")


def auth_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            "database_url": database_url,
            "metrics_port": free_port(),
            "jwt_secret": JWT_SECRET,
            "key_pepper": KEY_PEPPER,
            "internal_token": None,
            **CHEAP_ARGON2,
            **overrides,
        }
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client that calls it in-process."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://auth") as client,
    ):
        yield client


def app_of(client: httpx.AsyncClient) -> Any:
    """The app behind an in-process client of `serving`."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app


@pytest.fixture(scope="module")
def settings(migrated_database_url: str) -> Settings:
    return auth_settings(migrated_database_url)


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as http:
        yield http


@pytest.fixture
def sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(db_engine)


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def register(client: httpx.AsyncClient, email: str | None = None) -> dict[str, Any]:
    response = await client.post("/v1/users", json={"email": email or new_email(), "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post("/v1/sessions", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


async def introspect(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post("/v1/introspect", json={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_user(sessions: async_sessionmaker[AsyncSession], user_id: str) -> UserAccount:
    async with sessions() as session:
        return (await session.exec(select(UserAccount).where(UserAccount.id == uuid.UUID(user_id)))).one()


async def stored_key(sessions: async_sessionmaker[AsyncSession], key_id: str) -> ApiKey:
    async with sessions() as session:
        return (await session.exec(select(ApiKey).where(ApiKey.id == uuid.UUID(key_id)))).one()


async def set_user(sessions: async_sessionmaker[AsyncSession], user_id: str, **values: Any) -> None:
    async with sessions() as session:
        await session.exec(
            update(UserAccount).where(col(UserAccount.id) == uuid.UUID(user_id)).values(**values)
        )
        await session.commit()


async def scrape(settings: Settings) -> str:
    """/metrics, from the port of its own that the service serves it on."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{settings.metrics_port}/metrics")
    assert answer.status_code == 200
    return answer.text


async def test_health_and_metrics(client: httpx.AsyncClient, settings: Settings) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    await register(client)
    assert (await client.get("/metrics")).status_code == 404  # not on the API's port
    assert 'ea_auth_registrations_total{outcome="created"}' in await scrape(settings)


async def test_registration_shows_the_key_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    email = new_email()
    body = await register(client, email.upper())
    user, key = body["user"], body["api_key"]
    assert user["email"] == email
    assert user["limits"] == {
        "monthly_analyses": 100,
        "monthly_video_seconds": 36000,
        "rate_limit_per_minute": 120,
    }
    assert KEY_FORMAT.fullmatch(key["key"])
    assert key["prefix"] == key["key"][:11]
    assert key["name"] == "default"
    assert key["revoked_at"] is None and key["last_used_at"] is None

    row = await stored_key(sessions, key["id"])
    assert row.user_id == uuid.UUID(user["id"])
    expected_hash = hmac.new(KEY_PEPPER.encode(), key["key"].encode(), hashlib.sha256).hexdigest()
    assert row.key_hash == expected_hash
    secret_part = key["key"].rsplit("_", 1)[1]
    async with sessions() as session:
        connection = await session.connection()
        for table in ("api_key", "user_account"):
            rows = (
                (await connection.execute(text(f"SELECT row_to_json(t)::text FROM {table} t")))
                .scalars()
                .all()
            )
            assert rows
            for stored in rows:
                assert secret_part not in stored and PASSWORD not in stored
    account = await stored_user(sessions, user["id"])
    assert argon2.PasswordHasher().verify(account.password_hash, PASSWORD)

    listed = await client.get("/v1/keys", headers=bearer(key["key"]))
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [key["id"]]
    assert "key" not in listed.json()["items"][0]
    assert secret_part not in listed.text


async def test_a_taken_email_is_409_whatever_its_case(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    email = new_email()
    await register(client, email)
    again = await client.post("/v1/users", json={"email": email.upper(), "password": "another password"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"
    async with sessions() as session:
        users = (await session.exec(select(UserAccount).where(UserAccount.email == email))).all()
    assert len(users) == 1


async def test_concurrent_registrations_of_one_email_create_one_account(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    email = new_email()
    responses = await asyncio.gather(
        *(client.post("/v1/users", json={"email": email, "password": PASSWORD}) for _ in range(4))
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    async with sessions() as session:
        user = (await session.exec(select(UserAccount).where(UserAccount.email == email))).one()
        keys = (await session.exec(select(ApiKey).where(ApiKey.user_id == user.id))).all()
    assert [key.name for key in keys] == ["default"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "x@example.com", "password": "too short"}, "password"),
        ({"email": "x@example.com"}, "password"),
        ({"email": "x@example.com", "password": PASSWORD, "admin": True}, "admin"),
    ],
)
async def test_a_bad_email_or_password_is_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    for path in ("/v1/users", "/v1/sessions"):
        response = await client.post(path, json=body)
        assert response.status_code == 422, path
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert any(detail["loc"][-1] == field for detail in error["details"])


async def test_a_login_gives_a_token_for_the_api(client: httpx.AsyncClient) -> None:
    registration = await register(client)
    email = registration["user"]["email"]
    response = await client.post("/v1/sessions", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 201
    session_token = response.json()
    assert session_token["token_type"] == "bearer"
    expires_at = datetime.fromisoformat(session_token["expires_at"])
    assert timedelta(hours=11) < expires_at - datetime.now(UTC) <= timedelta(hours=12)

    me = await client.get("/v1/users/me", headers=bearer(session_token["access_token"]))
    assert me.status_code == 200
    assert me.json() == registration["user"]
    answer = await introspect(client, session_token["access_token"])
    assert answer["active"] is True
    assert answer["kind"] == "session"
    assert answer["user_id"] == registration["user"]["id"]
    assert answer["limits"] == registration["user"]["limits"]


async def test_a_wrong_password_and_an_unknown_email_get_the_same_401(client: httpx.AsyncClient) -> None:
    email = (await register(client))["user"]["email"]
    wrong = await client.post("/v1/sessions", json={"email": email, "password": "not the password"})
    unknown = await client.post("/v1/sessions", json={"email": new_email(), "password": PASSWORD})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "invalid_credentials"
    assert wrong.json() == unknown.json()


async def test_a_login_rehashes_a_password_hashed_with_old_parameters(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    registration = await register(client)
    email, user_id = registration["user"]["email"], registration["user"]["id"]
    old_hash = (await stored_user(sessions, user_id)).password_hash
    assert argon2.extract_parameters(old_hash).time_cost == 1

    stronger = auth_settings(settings.database_url, password_time_cost=2, password_memory_cost_kib=2048)
    async with serving(stronger) as upgraded:
        await login(upgraded, email)
        new_hash = (await stored_user(sessions, user_id)).password_hash
        assert new_hash != old_hash
        parameters = argon2.extract_parameters(new_hash)
        assert (parameters.time_cost, parameters.memory_cost) == (2, 2048)
        assert argon2.PasswordHasher().verify(new_hash, PASSWORD)
        # Hashed with the current parameters now: the next login leaves it alone.
        await login(upgraded, email)
        assert (await stored_user(sessions, user_id)).password_hash == new_hash


async def test_logging_out_revokes_the_session(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    registration = await register(client)
    token = await login(client, registration["user"]["email"])
    other_token = await login(client, registration["user"]["email"])
    session_id = (await introspect(client, token))["credential_id"]

    with_key = await client.delete("/v1/sessions/current", headers=bearer(registration["api_key"]["key"]))
    assert with_key.status_code == 401
    assert with_key.json()["error"]["code"] == "session_required"

    response = await client.delete("/v1/sessions/current", headers=bearer(token))
    assert response.status_code == 204
    assert await introspect(client, token) == {"active": False}
    me = await client.get("/v1/users/me", headers=bearer(token))
    assert me.status_code == 401
    assert me.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.delete("/v1/sessions/current", headers=bearer(token))).status_code == 401
    async with sessions() as session:
        row = (await session.exec(select(AuthSession).where(AuthSession.id == uuid.UUID(session_id)))).one()
    assert row.revoked_at is not None
    # Only that session ended.
    assert (await introspect(client, other_token))["active"] is True


async def test_an_expired_or_forged_token_is_inactive(client: httpx.AsyncClient, settings: Settings) -> None:
    registration = await register(client)
    answer = await introspect(client, await login(client, registration["user"]["email"]))
    user_id, session_id = uuid.UUID(answer["user_id"]), uuid.UUID(answer["credential_id"])
    now = datetime.now(UTC).replace(microsecond=0)

    def claims(expires_at: datetime) -> SessionClaims:
        return SessionClaims(
            user_id=user_id, session_id=session_id, issued_at=now - timedelta(hours=1), expires_at=expires_at
        )

    ours = SessionTokens(secret=JWT_SECRET, issuer=settings.jwt_issuer)
    # The same session, re-signed by the service's own key: active while unexpired, so what follows can fail.
    assert (await introspect(client, ours.encode(claims(now + timedelta(hours=1)))))["active"] is True
    expired = ours.encode(claims(now - timedelta(seconds=1)))
    forged = SessionTokens(secret="an-attacker-secret-0123456789abcdef", issuer=settings.jwt_issuer)
    foreign = SessionTokens(secret=JWT_SECRET, issuer="another-issuer")
    for token in (
        expired,
        forged.encode(claims(now + timedelta(hours=1))),
        foreign.encode(claims(now + timedelta(hours=1))),
        ours.encode(
            SessionClaims(
                user_id=uuid.uuid4(),
                session_id=session_id,
                issued_at=now,
                expires_at=now + timedelta(hours=1),
            )
        ),
        "not-a-token",
    ):
        assert await introspect(client, token) == {"active": False}
        assert (await client.get("/v1/users/me", headers=bearer(token))).status_code == 401


async def test_a_session_ended_in_the_database_ends_its_token(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The session row's expiry counts too, so shortening it (an admin ending a session) takes effect."""
    registration = await register(client)
    token = await login(client, registration["user"]["email"])
    session_id = uuid.UUID((await introspect(client, token))["credential_id"])
    async with sessions() as session:
        await session.exec(
            update(AuthSession)
            .where(col(AuthSession.id) == session_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    assert await introspect(client, token) == {"active": False}


async def test_the_lifecycle_of_an_api_key(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    registration = await register(client)
    token = await login(client, registration["user"]["email"])
    created = await client.post("/v1/keys", json={"name": "ci"}, headers=bearer(token))
    assert created.status_code == 201
    key = created.json()
    assert key["name"] == "ci" and KEY_FORMAT.fullmatch(key["key"]) and key["prefix"] == key["key"][:11]

    listed = (await client.get("/v1/keys", headers=bearer(token))).json()["items"]
    assert [(item["id"], item["name"], item["prefix"]) for item in listed] == [
        (registration["api_key"]["id"], "default", registration["api_key"]["prefix"]),
        (key["id"], "ci", key["prefix"]),
    ]
    assert all("key" not in item for item in listed)

    assert (await stored_key(sessions, key["id"])).last_used_at is None
    answer = await introspect(client, key["key"])
    assert answer == {
        "active": True,
        "user_id": registration["user"]["id"],
        "kind": "api_key",
        "credential_id": key["id"],
        "limits": registration["user"]["limits"],
    }
    last_used = (await stored_key(sessions, key["id"])).last_used_at
    assert last_used is not None
    # Within a minute of the last recorded use, a check does not write again.
    await introspect(client, key["key"])
    assert (await stored_key(sessions, key["id"])).last_used_at == last_used

    assert (await client.delete(f"/v1/keys/{key['id']}", headers=bearer(token))).status_code == 204
    assert await introspect(client, key["key"]) == {"active": False}
    assert (await client.get("/v1/users/me", headers=bearer(key["key"]))).status_code == 401
    listed = (await client.get("/v1/keys", headers=bearer(token))).json()["items"]
    assert [item["revoked_at"] is not None for item in listed] == [False, True]
    # Revoking again changes nothing; the other key still works.
    assert (await client.delete(f"/v1/keys/{key['id']}", headers=bearer(token))).status_code == 204
    assert (await introspect(client, registration["api_key"]["key"]))["active"] is True


async def test_a_key_without_a_body_is_named_default(client: httpx.AsyncClient) -> None:
    registration = await register(client)
    token = await login(client, registration["user"]["email"])
    created = await client.post("/v1/keys", headers=bearer(token))
    assert created.status_code == 201
    assert created.json()["name"] == "default"
    too_long = await client.post("/v1/keys", json={"name": "x" * 101}, headers=bearer(token))
    assert too_long.status_code == 422


async def test_an_api_key_cannot_mint_keys(client: httpx.AsyncClient) -> None:
    """A key that could make keys would outlive its own revocation through them: keys come from sessions."""
    registration = await register(client)
    minted = await client.post(
        "/v1/keys", json={"name": "spare"}, headers=bearer(registration["api_key"]["key"])
    )
    assert minted.status_code == 403 and minted.json()["error"]["code"] == "session_required"
    token = await login(client, registration["user"]["email"])
    assert len((await client.get("/v1/keys", headers=bearer(token))).json()["items"]) == 1


async def test_a_last_use_is_recorded_at_most_once_a_minute(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    key_id = uuid.UUID((await register(client))["api_key"]["id"])
    async with sessions() as session:
        assert await repository.touch_last_used(session=session, key_id=key_id)
        assert not await repository.touch_last_used(session=session, key_id=key_id)
        await session.exec(
            update(ApiKey)
            .where(col(ApiKey.id) == key_id)
            .values(last_used_at=datetime.now(UTC) - timedelta(seconds=61))
        )
        await session.commit()
        assert await repository.touch_last_used(session=session, key_id=key_id)
        assert not await repository.touch_last_used(session=session, key_id=key_id)


async def test_users_cannot_see_or_revoke_each_others_keys(client: httpx.AsyncClient) -> None:
    alice, bob = await register(client), await register(client)
    alice_key, bob_key = alice["api_key"], bob["api_key"]

    listed = (await client.get("/v1/keys", headers=bearer(bob_key["key"]))).json()["items"]
    assert [item["id"] for item in listed] == [bob_key["id"]]
    for key_id in (alice_key["id"], str(uuid.uuid4())):
        response = await client.delete(f"/v1/keys/{key_id}", headers=bearer(bob_key["key"]))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "key_not_found"
    assert (await introspect(client, alice_key["key"]))["active"] is True


async def test_the_account_routes_need_a_credential(client: httpx.AsyncClient) -> None:
    unknown_key = "ea_AAAAAAAA_" + "A" * 32
    for headers in ({}, bearer(""), bearer(unknown_key), {"Authorization": "Basic dXNlcjpwYXNz"}):
        for method, path in (("GET", "/v1/users/me"), ("GET", "/v1/keys"), ("POST", "/v1/keys")):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
    assert await introspect(client, unknown_key) == {"active": False}


async def test_a_users_own_limits_override_the_defaults(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    registration = await register(client)
    await set_user(sessions, registration["user"]["id"], monthly_analyses=5, rate_limit_per_minute=7)
    expected = {"monthly_analyses": 5, "monthly_video_seconds": 36000, "rate_limit_per_minute": 7}
    key = registration["api_key"]["key"]
    assert (await client.get("/v1/users/me", headers=bearer(key))).json()["limits"] == expected
    assert (await introspect(client, key))["limits"] == expected


async def test_a_disabled_user_can_neither_log_in_nor_use_a_credential(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    registration = await register(client)
    email, key = registration["user"]["email"], registration["api_key"]["key"]
    token = await login(client, email)
    await set_user(sessions, registration["user"]["id"], disabled=True)

    refused = await client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "account_disabled"
    # Without the password, a disabled account looks like any failed login.
    wrong = await client.post("/v1/sessions", json={"email": email, "password": "not the password"})
    assert wrong.status_code == 401
    for credential in (key, token):
        assert await introspect(client, credential) == {"active": False}
        assert (await client.get("/v1/users/me", headers=bearer(credential))).status_code == 401

    await set_user(sessions, registration["user"]["id"], disabled=False)
    assert (await introspect(client, key))["active"] is True


async def test_introspection_requires_the_internal_token_when_one_is_set(settings: Settings) -> None:
    guarded = auth_settings(settings.database_url, internal_token=INTERNAL_TOKEN)
    async with serving(guarded) as client:
        key = (await register(client))["api_key"]["key"]
        for headers in ({}, {"X-Internal-Token": "wrong"}, {"X-Internal-Token": INTERNAL_TOKEN + "x"}):
            response = await client.post("/v1/introspect", json={"token": key}, headers=headers)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "forbidden"
        allowed = await client.post(
            "/v1/introspect", json={"token": key}, headers={"X-Internal-Token": INTERNAL_TOKEN}
        )
        assert allowed.status_code == 200
        assert allowed.json()["active"] is True


async def test_a_login_burst_hashes_a_bounded_number_at_once_and_refuses_the_overflow(
    migrated_database_url: str,
) -> None:
    """Thirty parallel logins with unknown emails: at most `concurrency` argon2 hashes (each holding its
    memory) run at once, `queue` more wait, the rest are told to retry; the service stays up."""
    costly = {"password_time_cost": 2, "password_memory_cost_kib": 16 * 1024, "password_parallelism": 1}
    bounded = auth_settings(
        migrated_database_url, **costly, password_hash_concurrency=2, password_hash_queue=4
    )
    async with serving(bounded) as client:
        burst = [
            client.post("/v1/sessions", json={"email": new_email(), "password": PASSWORD}) for _ in range(30)
        ]
        answers = await asyncio.gather(*burst)
        passwords = app_of(client).state.auth.passwords
        assert passwords.peak_running == 2
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) == {401, 503}, statuses
        assert statuses.count(401) >= 6  # the two running and the four waiting
        busy = next(answer for answer in answers if answer.status_code == 503)
        assert busy.json()["error"]["code"] == "auth_busy" and busy.headers["retry-after"] == "1"
        assert passwords.running == passwords.waiting == 0
        assert (await client.get("/healthz")).status_code == 200
        email = new_email()
        await register(client, email)
        assert await login(client, email)
        metrics = await scrape(bounded)
        assert "ea_auth_password_checks_refused_total" in metrics
        assert "ea_auth_password_hashes_running 0.0" in metrics
