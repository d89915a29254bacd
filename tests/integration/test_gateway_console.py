"""The web console's credentials against the real gateway and auth service: the session cookie a console
login sets, the CSRF checks /v1 makes of cookie-authenticated requests, logging out, and the /v1 routes the
console's player and downloads use (media redirect, CSV export)."""

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
import webvtt
from fastapi import FastAPI
from starlette.requests import Request

from devstack import LocalStack
from emotion_contract.events import AnalysisCompleted, AnalysisFailed, Event, Stage
from emotion_contract.results import AnalysisResult, summarise_speakers
from services.gateway.console.cookies import CookiePolicy
from services.gateway.main import create_app
from services.gateway.media_types import served_type
from services.gateway.settings import Settings
from shared.db.migrate import upgrade
from tests.integration.gateway_fixtures import (
    STATUS_TIMEOUT_S,
    Account,
    analyse,
    error_of,
    new_analysis,
    register,
    result_of_one_utterance,
    upload,
)
from tests.servers import free_port, serve_app

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]

FOREIGN_ORIGIN = "https://attacker.example"


@dataclass(frozen=True)
class BrowserSession:
    token: str
    csrf: str
    cookies: SimpleCookie

    def cookie_header(self, *, csrf: str | None = None) -> dict[str, str]:
        return {"Cookie": f"ea_session={self.token}; ea_csrf={csrf if csrf is not None else self.csrf}"}

    def csrf_headers(self, origin: str | None = None) -> dict[str, str]:
        headers = {**self.cookie_header(), "X-CSRF-Token": self.csrf}
        return {**headers, "Origin": origin} if origin else headers


def set_cookies(response: httpx.Response) -> SimpleCookie:
    cookies: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookies.load(header)
    return cookies


async def login_page_csrf(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> str:
    page = await http.get("/console/login", headers=headers or {})
    assert page.status_code == 200
    return set_cookies(page)["ea_csrf"].value


async def console_login(
    base_url: str, account: Account, headers: dict[str, str] | None = None
) -> tuple[BrowserSession, httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        csrf = await login_page_csrf(http, headers)
        response = await http.post(
            "/console/login",
            data={"email": account.email, "password": account.password, "csrf_token": csrf},
            headers={"Cookie": f"ea_csrf={csrf}", **(headers or {})},
        )
    assert response.status_code == 303, response.text
    cookies = set_cookies(response)
    return BrowserSession(cookies["ea_session"].value, cookies["ea_csrf"].value, cookies), response


@pytest.fixture(scope="module")
def base_url(gateway_app: tuple[FastAPI, str]) -> str:
    return gateway_app[1]


@pytest.fixture
async def http(base_url: str) -> Any:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


async def test_a_console_login_sets_an_httponly_lax_session_cookie_for_the_tokens_life(
    base_url: str, account: Account
) -> None:
    browser, response = await console_login(base_url, account)

    assert response.headers["location"] == "/console"
    session = browser.cookies["ea_session"]
    assert session["httponly"] is True and session["samesite"] == "lax" and session["path"] == "/"
    assert not session["secure"]  # the request came over plain http
    assert 3000 < int(session["max-age"]) <= 24 * 3600
    csrf = browser.cookies["ea_csrf"]
    assert not csrf["httponly"] and csrf["samesite"] == "lax" and len(csrf.value) >= 32


async def test_the_cookies_are_secure_when_the_browser_came_over_https(
    base_url: str, account: Account
) -> None:
    browser, _ = await console_login(base_url, account, headers={"X-Forwarded-Proto": "https"})

    assert browser.cookies["ea_session"]["secure"] is True
    assert browser.cookies["ea_csrf"]["secure"] is True


async def test_a_login_form_without_the_csrf_token_sets_no_session(
    http: httpx.AsyncClient, account: Account
) -> None:
    csrf = await login_page_csrf(http)
    response = await http.post(
        "/console/login",
        data={"email": account.email, "password": account.password, "csrf_token": "forged"},
        headers={"Cookie": f"ea_csrf={csrf}"},
    )

    assert response.status_code == 403
    assert "ea_session" not in set_cookies(response)
    assert "expired or came from another site" in response.text


async def test_a_wrong_password_shows_the_auth_services_message_on_the_login_page(
    http: httpx.AsyncClient, account: Account
) -> None:
    csrf = await login_page_csrf(http)
    response = await http.post(
        "/console/login",
        data={"email": account.email, "password": "not the password at all", "csrf_token": csrf},
        headers={"Cookie": f"ea_csrf={csrf}"},
    )

    assert response.status_code == 401 and "text/html" in response.headers["content-type"]
    assert "ea_session" not in set_cookies(response)
    assert 'role="alert"' in response.text and "Traceback" not in response.text


async def test_v1_accepts_the_session_cookie_for_reads_without_csrf(
    http: httpx.AsyncClient, base_url: str, account: Account
) -> None:
    browser, _ = await console_login(base_url, account)

    response = await http.get("/v1/analyses", headers=browser.cookie_header())

    assert response.status_code == 200, response.text


async def test_an_unsafe_request_with_the_cookie_but_no_csrf_token_is_refused(
    http: httpx.AsyncClient, base_url: str, account: Account
) -> None:
    browser, _ = await console_login(base_url, account)

    without = await http.post("/v1/upload-url", json={"filename": "a.mp4"}, headers=browser.cookie_header())
    mismatched = await http.post(
        "/v1/upload-url",
        json={"filename": "a.mp4"},
        headers={**browser.cookie_header(), "X-CSRF-Token": browser.csrf[:-2] + "xx"},
    )
    no_cookie_copy = await http.post(
        "/v1/upload-url",
        json={"filename": "a.mp4"},
        headers={**browser.cookie_header(csrf=""), "X-CSRF-Token": browser.csrf},
    )

    assert error_of(without) == (403, "csrf_failed")
    assert error_of(mismatched) == (403, "csrf_failed")
    assert error_of(no_cookie_copy) == (403, "csrf_failed")


async def test_an_unsafe_request_with_the_cookie_and_the_csrf_token_is_served(
    http: httpx.AsyncClient, base_url: str, account: Account
) -> None:
    browser, _ = await console_login(base_url, account)

    same_origin = await http.post(
        "/v1/upload-url", json={"filename": "a.mp4"}, headers=browser.csrf_headers(origin=base_url)
    )
    no_origin = await http.post("/v1/upload-url", json={"filename": "a.mp4"}, headers=browser.csrf_headers())

    assert same_origin.status_code == 200, same_origin.text
    assert no_origin.status_code == 200, no_origin.text


async def test_a_foreign_origin_or_referer_is_refused_even_with_the_csrf_token(
    http: httpx.AsyncClient, base_url: str, account: Account
) -> None:
    browser, _ = await console_login(base_url, account)

    foreign_origin = await http.post(
        "/v1/upload-url", json={"filename": "a.mp4"}, headers=browser.csrf_headers(origin=FOREIGN_ORIGIN)
    )
    foreign_referer = await http.post(
        "/v1/upload-url",
        json={"filename": "a.mp4"},
        headers={**browser.csrf_headers(), "Referer": f"{FOREIGN_ORIGIN}/page"},
    )
    opaque_origin = await http.delete(f"/v1/analyses/{uuid.uuid4()}", headers=browser.csrf_headers("null"))

    assert error_of(foreign_origin) == (403, "csrf_failed")
    assert error_of(foreign_referer) == (403, "csrf_failed")
    assert error_of(opaque_origin) == (403, "csrf_failed")


async def test_a_bearer_credential_needs_no_csrf_token(http: httpx.AsyncClient, account: Account) -> None:
    headers = {"Authorization": f"Bearer {account.key}", "Origin": FOREIGN_ORIGIN}

    response = await http.post("/v1/upload-url", json={"filename": "a.mp4"}, headers=headers)

    assert response.status_code == 200, response.text


async def test_logging_out_revokes_the_session_and_clears_the_cookies(
    http: httpx.AsyncClient, base_url: str, account: Account
) -> None:
    browser, _ = await console_login(base_url, account)

    logout = await http.post(
        "/console/logout", data={"csrf_token": browser.csrf}, headers=browser.cookie_header()
    )
    api = await http.get("/v1/analyses", headers=browser.cookie_header())
    page = await http.get("/console", headers=browser.cookie_header())

    assert logout.status_code == 303 and logout.headers["location"] == "/console/login?out=1"
    cleared = set_cookies(logout)
    assert cleared["ea_session"].value == "" and cleared["ea_session"]["max-age"] == "0"
    assert error_of(api) == (401, "unauthorized")
    assert "session has ended" in api.json()["error"]["message"]
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login?ended=1")
    ended = await http.get(page.headers["location"])
    assert "Your session has ended" in ended.text


async def test_a_console_page_without_a_session_leads_to_the_login_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/console/keys")

    assert (
        response.status_code == 303
        and response.headers["location"] == "/console/login?next=%2Fconsole%2Fkeys"
    )


async def test_with_the_auth_service_down_a_person_gets_a_page_and_a_program_gets_json(
    gateway_settings: Settings, stack: LocalStack, account: Account
) -> None:
    # A gateway of its own (own consumer group and database), whose auth service is a port nobody serves.
    database = f"test_gateway_{uuid.uuid4().hex[:12]}"
    database_url = stack.create_database(database)
    settings = gateway_settings.model_copy(
        update={
            "service_name": "gateway-auth-down",
            "database_url": database_url,
            "auth_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    try:
        await upgrade(database_url)
        async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/console/keys", headers={"Cookie": "ea_session=a-session-token"})
            api = await http.get("/v1/analyses", headers={"Authorization": f"Bearer {account.key}"})
    finally:
        stack.drop_database(database)

    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "30"
    assert "sign-in cannot be checked right now" in page.text and "Traceback" not in page.text
    assert error_of(api) == (503, "auth_unavailable")


async def test_the_media_route_redirects_the_owner_to_the_uploaded_file(
    http: httpx.AsyncClient, base_url: str, account: Account, client: httpx.AsyncClient, video: bytes
) -> None:
    job_id = await new_analysis(client, video)
    stranger = await register(base_url)

    response = await client.get(f"/v1/analyses/{job_id}/media")
    not_theirs = await http.get(
        f"/v1/analyses/{job_id}/media", headers={"Authorization": f"Bearer {stranger.key}"}
    )

    assert response.status_code == 307
    async with httpx.AsyncClient() as s3:
        media = await s3.get(response.headers["location"])
    assert media.status_code == 200 and media.content == video
    assert media.headers["content-type"] == "video/mp4"
    assert media.headers["content-disposition"] == 'inline; filename="clip.mp4"'
    assert error_of(not_theirs) == (404, "analysis_not_found")


async def test_media_is_served_as_what_its_bytes_are_not_as_what_it_is_called(
    client: httpx.AsyncClient, wav: bytes
) -> None:
    key = await upload(client, "clip.mp4", wav)  # a WAVE file named .mp4
    job_id = (await analyse(client, key))["id"]
    response = await client.get(f"/v1/analyses/{job_id}/media")
    async with httpx.AsyncClient() as s3:
        media = await s3.get(response.headers["location"])
    assert media.headers["content-type"] == "audio/wav"
    assert media.headers["content-disposition"] == 'inline; filename="clip.mp4"'


def test_served_types_follow_the_bytes() -> None:
    assert served_type(b"<html><script>alert(1)</script>", "talk.mp4") == "application/octet-stream"
    assert served_type(b"\x00\x00\x00\x20ftypM4A ", "voice.m4a") == "audio/mp4"
    assert served_type(b"\x00\x00\x00\x20ftypisom", "talk.mkv") == "video/mp4"


async def test_the_csv_export_has_a_row_per_utterance_once_completed(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)
    early = await client.get(f"/v1/analyses/{job_id}/export.csv")
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
    await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})

    response = await client.get(f"/v1/analyses/{job_id}/export.csv")

    assert error_of(early) == (409, "analysis_not_completed")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1
    row = rows[0]
    assert row["text"] == "hello there" and row["top_emotion"] == "joy"
    assert row["top_emotion_confidence"] == "0.5500" and row["emotion_joy"] == "0.5500"
    assert row["text_available"] == "true" and row["video_available"] == "false"


async def test_the_subtitle_exports_have_a_cue_per_utterance_once_completed(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await new_analysis(client, video)
    early = await client.get(f"/v1/analyses/{job_id}/export.vtt")
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
    await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})

    vtt = await client.get(f"/v1/analyses/{job_id}/export.vtt")
    srt = await client.get(f"/v1/analyses/{job_id}/export.srt")
    elsewhere = await client.get(f"/v1/analyses/{uuid.uuid4()}/export.srt")

    assert error_of(early) == (409, "analysis_not_completed")
    assert error_of(elsewhere) == (404, "analysis_not_found")
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.headers["content-disposition"] == f'attachment; filename="analysis-{job_id}.vtt"'
    assert srt.headers["content-type"].startswith("application/x-subrip")
    for captions in (
        webvtt.from_string(vtt.text, strict=True).captions,
        webvtt.from_buffer(io.StringIO(srt.text), format="srt").captions,
    ):
        [cue] = captions
        assert cue.text.splitlines() == ["hello there", "[joy 55% · positive 60%]"]


async def test_a_failed_analysis_page_names_the_stage_and_the_reason(
    http: httpx.AsyncClient,
    base_url: str,
    account: Account,
    client: httpx.AsyncClient,
    video: bytes,
    pipeline: Callable[[Event], Any],
) -> None:
    job_id = await new_analysis(client, video)
    reason = "the video has no audio track"
    await pipeline(
        AnalysisFailed(job_id=job_id, stage=Stage.ENCODE_AUDIO, code="no_audio_track", reason=reason)
    )
    await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})
    browser, _ = await console_login(base_url, account)

    page = await http.get(f"/console/analyses/{job_id}", headers=browser.cookie_header())

    assert page.status_code == 200
    assert f"The analysis failed at the stage “encode_audio”: {reason}" in page.text
    assert 'data-status="failed"' in page.text and "Traceback" not in page.text


async def test_console_pages_carry_a_content_security_policy(http: httpx.AsyncClient) -> None:
    page = await http.get("/console/login")
    policy = dict(
        directive.strip().split(" ", 1) for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    # Uploads and media go to the object store's own origin, and only there besides this one.
    assert policy["connect-src"].startswith("'self' http://127.0.0.1:")


def test_production_cookies_are_host_cookies_and_always_secure() -> None:
    request = Request({"type": "http", "scheme": "http", "headers": [], "method": "GET", "path": "/"})
    production, development = CookiePolicy(production=True), CookiePolicy(production=False)
    assert (production.session, production.csrf) == ("__Host-ea_session", "__Host-ea_csrf")
    assert production.secure(request)  # even behind a proxy that did not say https
    assert (development.session, development.csrf) == ("ea_session", "ea_csrf")
    assert not development.secure(request)


def result_of_two_speakers() -> AnalysisResult:
    one = result_of_one_utterance().utterances[0]
    said = [
        one.model_copy(update={"index": 0, "start_time": 0.0, "end_time": 1.5, "speaker": "S1"}),
        one.model_copy(
            update={"index": 1, "start_time": 2.0, "end_time": 2.5, "text": "no", "speaker": "S2"}
        ),
        one.model_copy(
            update={"index": 2, "start_time": 3.0, "end_time": 4.0, "text": "yes", "speaker": "S1"}
        ),
    ]
    return AnalysisResult(
        model_version="test-1", duration_s=4.0, utterances=said, speakers=summarise_speakers(said)
    )


async def test_a_conversation_shows_who_spoke_in_the_page_the_json_and_the_csv(
    http: httpx.AsyncClient,
    base_url: str,
    account: Account,
    client: httpx.AsyncClient,
    video: bytes,
    pipeline: Callable[[Event], Any],
) -> None:
    job_id = await new_analysis(client, video)
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_two_speakers()))
    done = (await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})).json()
    browser, _ = await console_login(base_url, account)

    page = (await http.get(f"/console/analyses/{job_id}", headers=browser.cookie_header())).text
    rows = list(csv.DictReader(io.StringIO((await client.get(f"/v1/analyses/{job_id}/export.csv")).text)))

    assert [u["speaker"] for u in done["result"]["utterances"]] == ["S1", "S2", "S1"]
    assert [(s["speaker"], s["utterances"], s["talk_time_s"]) for s in done["result"]["speakers"]] == [
        ("S1", 2, 2.5),
        ("S2", 1, 0.5),
    ]
    assert [row["speaker"] for row in rows] == ["S1", "S2", "S1"]
    assert page.count('<li data-speaker="S1">') == 2 and page.count('<li data-speaker="S2">') == 1
    assert '<select id="speaker-filter">' in page and '<option value="S2">S2</option>' in page
    assert page.count('class="lane" data-speaker=') == 2 and 'id="speakers"' in page
