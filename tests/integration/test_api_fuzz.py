"""Schemathesis fuzzes the gateway's public API and the auth service's API from the OpenAPI schemas they
serve, against the real services, PostgreSQL, broker and S3 server: the phases of `schemathesis run`
(examples, coverage, fuzzing, stateful) with its default checks. No answer may be a server error, and
every answer must be one its schema documents: status code, content type, body, headers, `Allow`.

The services run in the test's event loop, so the (blocking) fuzzer runs in a worker thread meanwhile.
Generation is deterministic (a fixed seed, derandomized): a failure reproduces on the next run.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import StopReason, events
from schemathesis.engine import from_schema as engine_for

from devstack.config import StackSettings
from services.auth.deps import INTERNAL_TOKEN_HEADER
from services.auth.main import create_app as create_auth_app
from services.auth.settings import Settings as AuthSettings
from services.gateway.settings import Settings
from services.gateway.state import Gateway
from shared.db.migrate import upgrade
from tests.integration.gateway_fixtures import CHEAP_PASSWORD_HASHING, Account, register
from tests.integration.test_gateway_accounts import bearer, set_limits
from tests.servers import serve_app

pytestmark = [
    pytest.mark.integration,
    # Raised by schemathesis' own strategies; nothing in this module can act on it.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]
pytest_plugins = ["tests.integration.gateway_fixtures"]

SEED: Final = 20251125
# Per operation and generation mode of the fuzzing phase; the coverage phase adds its boundary cases.
MAX_EXAMPLES: Final = 25
MAX_STATEFUL_STEPS: Final = 10
# An answer that takes longer is a hang, and reported as a failure.
REQUEST_TIMEOUT_S: Final = 10
UNLIMITED: Final = 1_000_000
INTERNAL_TOKEN: Final = "internal-token-of-the-fuzzed-auth-service"
# What schemathesis' positive_data_acceptance check accepts for a schema-valid request by default.
_ACCEPTED_BY_DEFAULT: Final = ("2xx", "3xx", "401", "403", "404", "409", "429", "5xx")
# Rules beyond what a JSON Schema can state: requests the schema allows that the service refuses with
# these statuses, all documented on the operation.
BUSINESS_RULE_REFUSALS: Final[dict[str, tuple[str, ...]]] = {
    # Fuzzed bytes are no video or audio file (415, or 422 when empty); a key is one upload-url gave (404).
    "POST /v1/analyses": ("413", "415", "422"),
    # A webhook target needs an http(s) URL with a host and without credentials.
    "POST /v1/webhooks": ("422",),
    # Email addresses at special-use domains (`.test`, `.invalid`, `.localhost`) can receive nothing.
    "POST /v1/users": ("422",),
    "POST /v1/sessions": ("422",),
}


@pytest.fixture(scope="module")
async def auth_url(settings: StackSettings, gateway_database_url: str) -> AsyncIterator[str]:
    """The real auth service as deployed: introspection only for callers with the internal token."""
    await upgrade(gateway_database_url)
    auth_settings = AuthSettings.model_validate(
        {
            **settings.model_dump(),
            "database_url": gateway_database_url,
            "internal_token": INTERNAL_TOKEN,
            **CHEAP_PASSWORD_HASHING,
        }
    )
    async with serve_app(create_auth_app(auth_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def gateway_settings(gateway_settings: Settings) -> Settings:
    return Settings.model_validate(
        {
            **gateway_settings.model_dump(),
            "internal_token": INTERNAL_TOKEN,
            # The fuzzer signs up and logs in far more often than people do.
            "account_rate_limit_per_minute": UNLIMITED,
            # The fuzzer's webhooks point anywhere: no delivery may go out to the hosts it makes up.
            "webhook_dispatcher": False,
        }
    )


@dataclass(frozen=True)
class Fuzzer:
    account: Account
    key_id: uuid.UUID


@pytest.fixture(scope="module")
async def fuzzer(gateway_app: tuple[FastAPI, str], gateway: Gateway) -> Fuzzer:
    """The account the fuzzer calls as, with limits it cannot reach in a run."""
    base_url = gateway_app[1]
    account = await register(base_url)
    await set_limits(
        gateway,
        account,
        rate_limit_per_minute=UNLIMITED,
        monthly_analyses=UNLIMITED,
        monthly_video_seconds=UNLIMITED,
    )
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(account.key)) as http:
        [key] = (await http.get("/v1/keys")).json()["items"]
    return Fuzzer(account=account, key_id=uuid.UUID(key["id"]))


def fuzz_config(base_url: str, headers: dict[str, str]) -> schemathesis.Config:
    refusals = [
        {
            # By the whole name: separate method and path filters would each match alone.
            "include-name": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_ACCEPTED_BY_DEFAULT, *statuses]}},
        }
        for operation, statuses in BUSINESS_RULE_REFUSALS.items()
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "headers": headers,
            "request-timeout": REQUEST_TIMEOUT_S,
            # GET /v1/analyses/{id}/events streams until the analysis ends. The fuzzer's account has none in
            # progress, so it answers 404; should one exist, its first event shows the stream's shape.
            "max-stream-events": 1,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"max-steps": MAX_STATEFUL_STEPS}},
            "operations": refusals,
        }
    )


def sparing_key(key_id: uuid.UUID) -> Callable[[schemathesis.HookContext, schemathesis.Case[Any]], bool]:
    """A `filter_case` hook that drops the one request revoking the key the fuzzer calls with: every
    request after it would be a 401, and the run would test nothing."""

    def filter_case(_: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
        if case.method != "DELETE" or case.operation.path != "/v1/keys/{key_id}":
            return True
        try:
            return uuid.UUID(str(case.path_parameters.get("key_id"))) != key_id
        except ValueError:
            return True

    return filter_case


def failures_found(schema: schemathesis.BaseSchema) -> dict[str, str]:
    """Every distinct failure of a run, with a curl command that reproduces it."""
    found: dict[str, str] = {}
    for event in engine_for(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            failed = (check.failure_info for checks in event.recorder.checks.values() for check in checks)
            for info in filter(None, failed):
                title = f"{event.recorder.label} ({event.phase.value}) {info.failure.title}"
                found.setdefault(f"{title}: {info.failure.message}", info.code_sample)
        elif isinstance(event, events.NonFatalError):
            found.setdefault(f"{event.label}: {event.info.format()}", "")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason is StopReason.COMPLETED, event.stop_reason
            for failure in event.failures:
                found.setdefault(f"{failure.operation} {failure.title}: {failure.message}", "")
    return found


def fuzz(
    schema_url: str, base_url: str, headers: dict[str, str], fuzzer: Fuzzer, *, path: str | None = None
) -> dict[str, str]:
    loaded = schemathesis.openapi.from_url(schema_url, config=fuzz_config(base_url, headers))
    # An exclusion: with `operations` in the config, an inclusion would only add to what is included.
    schema = loaded if path is None else loaded.exclude(lambda context: context.operation.path != path)
    schema.hook(sparing_key(fuzzer.key_id))
    return failures_found(schema)


def report(failures: dict[str, str]) -> str:
    return "\n\n".join(f"{title}\n{curl}" for title, curl in failures.items())


async def assert_still_authenticated(base_url: str, key: str) -> None:
    """The run called with a working key until its end, so its answers were not all 401s."""
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(key)) as http:
        assert (await http.get("/v1/users/me")).status_code == 200


async def test_the_gateway_answers_every_fuzzed_request_as_its_schema_documents(
    gateway_app: tuple[FastAPI, str], fuzzer: Fuzzer
) -> None:
    base_url = gateway_app[1]
    headers = bearer(fuzzer.account.key)
    failures = await asyncio.to_thread(fuzz, f"{base_url}/openapi.json", base_url, headers, fuzzer)
    assert not failures, report(failures)
    await assert_still_authenticated(base_url, fuzzer.account.key)


async def test_the_auth_service_answers_every_fuzzed_request_as_its_schema_documents(
    auth_url: str, fuzzer: Fuzzer
) -> None:
    headers = {**bearer(fuzzer.account.key), INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN}
    failures = await asyncio.to_thread(fuzz, f"{auth_url}/openapi.json", auth_url, headers, fuzzer)
    assert not failures, report(failures)
    await assert_still_authenticated(auth_url, fuzzer.account.key)


async def test_introspection_without_the_internal_token_is_refused_as_documented(
    auth_url: str, fuzzer: Fuzzer
) -> None:
    # No internal token among the fixed headers: the fuzzer leaves it out or makes one up.
    headers = bearer(fuzzer.account.key)
    failures = await asyncio.to_thread(
        fuzz, f"{auth_url}/openapi.json", auth_url, headers, fuzzer, path="/v1/introspect"
    )
    assert not failures, report(failures)


async def test_introspection_of_live_and_dead_credentials_conforms_to_the_schema(
    auth_url: str, fuzzer: Fuzzer
) -> None:
    account = fuzzer.account
    async with httpx.AsyncClient(base_url=auth_url) as http:
        login = await http.post("/v1/sessions", json={"email": account.email, "password": account.password})
    session_token = login.json()["access_token"]
    tokens = [account.key, session_token, f"{account.key[:-4]}xxxx", session_token[:-4], ""]

    def introspect_each() -> list[dict[str, Any]]:
        schema = schemathesis.openapi.from_url(
            f"{auth_url}/openapi.json", config=fuzz_config(auth_url, headers={})
        )
        operation = schema["/v1/introspect"]["POST"]
        answers = []
        for token in tokens:
            case = operation.Case(body={"token": token}, headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN})
            answers.append(case.call_and_validate().json())
        return answers

    answers = await asyncio.to_thread(introspect_each)

    assert [(answer["active"], answer.get("kind")) for answer in answers[:2]] == [
        (True, "api_key"),
        (True, "session"),
    ]
    assert all(answer["user_id"] == account.id for answer in answers[:2])
    assert answers[2:] == [{"active": False}] * 3
