"""The web console in a real headless browser (Debian's chromium, driven by playwright) against the whole
stack as processes: a person signs up, uploads a real talking video, watches it finish, reads and plays the
result, manages API keys, and meets readable messages for bad files and an ended session.

The tests of this module share one signed-up person and their analysis, and run in file order.
Screenshots of the result page (desktop and phone width) are left in var/artifacts/console/.
"""

import csv
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from devstack import LocalStack, ServiceName
from tests.e2e.conftest import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.e2e

CHROMIUM: Final = Path("/usr/bin/chromium")
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "console"
DESKTOP: Final = {"width": 1280, "height": 800}
PHONE: Final = {"width": 390, "height": 844}
PASSWORD: Final = "a long enough password"
# The whole pipeline on CPU: transcription, both encoders and fusion of a 6 s video.
ANALYSIS_TIMEOUT_MS: Final = 300_000
NAVIGATION_TIMEOUT_MS: Final = 60_000


@dataclass
class Journey:
    """What the tests of this module share: the person's browser page and what they made."""

    page: Page
    email: str
    analysis_id: str | None = None
    utterances: list[dict[str, Any]] = field(default_factory=list)

    def analysis(self) -> str:
        assert self.analysis_id is not None, "the upload test did not get as far as an analysis"
        return self.analysis_id


@pytest.fixture(scope="module")
def gateway_url(full_stack: LocalStack) -> str:
    return full_stack.service_url(ServiceName.GATEWAY)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (scripts/setup.sh does)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield browser
    browser.close()


def new_context(browser: Browser, gateway_url: str) -> BrowserContext:
    context = browser.new_context(base_url=gateway_url, viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(NAVIGATION_TIMEOUT_MS)
    return context


def sign_up(page: Page) -> str:
    email = f"console-{uuid.uuid4().hex[:12]}@example.com"
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name=f"Welcome, {email}")).to_be_visible()
    expect(page.locator("#new-key")).to_have_text(re.compile(r"^ea_"))
    return email


@pytest.fixture(scope="module")
def journey(browser: Browser, gateway_url: str) -> Iterator[Journey]:
    context = new_context(browser, gateway_url)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield Journey(page=page, email=sign_up(page))
    context.close()


def no_stack_trace(page: Page) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Internal Server Error" not in body, body


def total_analyses(page: Page) -> int:
    answer = page.request.get("/v1/analyses")
    assert answer.status == 200, answer.text()
    total: int = answer.json()["total"]
    return total


def open_result(page: Page, analysis_id: str) -> None:
    # Not until "load": the local S3 server answers byte ranges with 200 instead of 206, which can leave
    # chromium's player loading (and the load event waiting) until it plays. People see the page at once.
    page.goto(f"/console/analyses/{analysis_id}", wait_until="domcontentloaded")


def upload(page: Page, path: Path) -> None:
    page.goto("/console")
    page.locator("#file").set_input_files(str(path))


def test_a_new_person_uploads_a_talking_video_and_watches_it_finish(
    journey: Journey, talking_videos: Path, full_stack: LocalStack
) -> None:
    page = journey.page
    sent: list[tuple[str, str]] = []
    page.on("request", lambda request: sent.append((request.method, request.url)))
    upload(page, talking_videos / "vr_face_1.mp4")

    page.wait_for_url("**/console/analyses/*", wait_until="domcontentloaded")
    # The bytes went straight to the object store under the signed POST policy, not through the gateway.
    assert ("POST", f"{full_stack.public_s3_url}/uploads") in sent, sent
    assert ("POST", page.url.split("/console")[0] + "/v1/analyses") in sent
    journey.analysis_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    root = page.locator("#analysis")
    # Seconds of work remain: the page follows the stages live, and deleting now is refused readably.
    expect(root).to_have_attribute("data-status", re.compile(r"^(queued|processing)$"))
    expect(page.locator("#stages")).to_be_visible()
    page.get_by_role("button", name="Delete this analysis").click()
    expect(page.locator("#delete-message")).to_contain_text("delete it once it has finished")

    expect(page.locator("#status")).to_have_text("completed", timeout=ANALYSIS_TIMEOUT_MS)
    no_stack_trace(page)
    answer = page.request.get(f"/v1/analyses/{journey.analysis()}")
    journey.utterances = answer.json()["result"]["utterances"]
    assert journey.utterances


def test_the_result_shows_the_timeline_table_and_player(journey: Journey, talking_videos: Path) -> None:
    page = journey.page
    open_result(page, journey.analysis())
    timeline = page.locator("#timeline .utterance")
    expect(timeline).to_have_count(len(journey.utterances))
    for button, utterance in zip(timeline.all(), journey.utterances, strict=True):
        expect(button.locator(".text")).to_have_text(utterance["text"].strip() or "(no words)")
        expect(button.locator(".tag")).to_have_text(utterance["emotions"][0]["label"])
    expect(page.locator("#utterances tbody tr")).to_have_count(len(journey.utterances))
    expect(page.locator(".legend li")).to_have_count(7)
    expect(page.locator("#utterances tbody tr").first).to_contain_text("face")

    # The player's source, GET /v1/analyses/{id}/media, leads the browser to the uploaded file.
    media_url = f"/v1/analyses/{journey.analysis()}/media"
    expect(page.locator("video#player")).to_have_attribute("src", media_url)
    media = page.request.get(media_url)
    assert media.status == 200 and len(media.body()) == (talking_videos / "vr_face_1.mp4").stat().st_size
    # Clicking an utterance seeks the player to its start.
    last = journey.utterances[-1]
    timeline.last.click()
    current = page.evaluate("document.getElementById('player').currentTime")
    assert abs(current - last["start_time"]) < 0.05, (current, last["start_time"])

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert [row["text"] for row in rows] == [u["text"] for u in journey.utterances]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "result-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    open_result(page, journey.analysis())
    expect(page.locator("#timeline .utterance").first).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than a phone's screen"
    page.screenshot(path=ARTIFACTS / "result-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    no_stack_trace(page)


def test_the_result_can_be_used_by_keyboard_alone(journey: Journey) -> None:
    page = journey.page
    open_result(page, journey.analysis())
    page.locator("#timeline .utterance").first.focus()
    # Away and back by keyboard, as a person would reach it.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.dataset.start")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    page.keyboard.press("Enter")

    assert float(focused) == journey.utterances[0]["start_time"]
    assert outline == "solid"
    current = page.evaluate("document.getElementById('player').currentTime")
    assert abs(current - journey.utterances[0]["start_time"]) < 0.05
    unlabelled = page.evaluate(
        """Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
             .filter(control => !control.labels || control.labels.length === 0).length"""
    )
    assert unlabelled == 0


def test_a_key_is_created_shown_once_and_revoked(journey: Journey, gateway_url: str) -> None:
    page = journey.page
    page.goto("/console/keys")
    page.get_by_label("Name of a new key").fill("ci build")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("ea_")
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    assert httpx.get(f"{gateway_url}/v1/usage", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    # by its exact name cell: a substring would also match a random key prefix such as ea_bINcIiKT
    row = page.locator("#keys tbody tr").filter(has=page.get_by_role("cell", name="ci build", exact=True))
    prefix = row.get_attribute("data-key-prefix")
    assert prefix and key.startswith(prefix)

    row.get_by_role("button", name=f"Revoke key {prefix}").click()

    expect(page.locator("#keys-message")).to_contain_text(f"The key {prefix}… is revoked")
    expect(page.locator("#new-key")).to_have_count(0)  # shown once: not after the revocation
    expect(page.locator(f'#keys tr[data-key-prefix="{prefix}"]')).to_contain_text("revoked")
    assert httpx.get(f"{gateway_url}/v1/usage", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_usage_examples_and_webhooks_pages_show_the_persons_own_data(
    journey: Journey, gateway_url: str
) -> None:
    page = journey.page
    page.goto("/console/usage")
    expect(page.locator("#usage-analyses")).to_contain_text("1 of")
    page.goto("/console/examples")
    expect(page.locator("#example-curl")).to_contain_text(f"{gateway_url}/v1/analyses")
    expect(page.locator("#example-python")).to_contain_text("EmotionAnalyzer(")
    page.goto("/console/webhooks")
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#secret-value")).to_have_text(re.compile(r"^whsec_"))
    page.get_by_role("link", name="Done").click()
    page.get_by_role("link", name="Deliveries").click()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.locator("#deliveries li.card").first).to_contain_text("webhook.test")
    no_stack_trace(page)


def test_a_second_person_sees_none_of_the_first_persons_analyses(
    journey: Journey, browser: Browser, gateway_url: str
) -> None:
    context = new_context(browser, gateway_url)
    page = context.new_page()
    try:
        sign_up(page)
        page.goto("/console")
        expect(page.locator("#no-analyses")).to_be_visible()
        open_result(page, journey.analysis())
        expect(page.get_by_role("alert")).to_contain_text("No analysis of yours")
        assert page.request.get(f"/v1/analyses/{journey.analysis()}").status == 404
        assert page.request.get(f"/v1/analyses/{journey.analysis()}/media", max_redirects=0).status == 404
    finally:
        context.close()


def test_a_file_that_is_no_video_is_refused_readably_and_creates_nothing(
    journey: Journey, tmp_path: Path
) -> None:
    page = journey.page
    before = total_analyses(page)
    notes = tmp_path / "notes.txt"
    notes.write_text("these are notes, not a video\n")
    disguised = tmp_path / "holiday.mp4"
    disguised.write_text("this is text pretending to be a video\n" * 100)

    upload(page, notes)
    expect(page.locator("#upload-error")).to_contain_text("supported types are")
    upload(page, disguised)
    expect(page.locator("#upload-error")).to_contain_text("does not start like any supported video")

    no_stack_trace(page)
    assert total_analyses(page) == before


def test_an_oversized_file_is_refused_readably_and_creates_nothing(journey: Journey, tmp_path: Path) -> None:
    page = journey.page
    before = total_analyses(page)
    big = tmp_path / "long.mp4"
    with big.open("wb") as file:
        file.write(b"\x00\x00\x00\x20ftypisom")
        file.truncate(MAX_UPLOAD_BYTES + 1024)

    upload(page, big)
    expect(page.locator("#upload-error")).to_contain_text("is larger than the limit of 8.0 MiB")
    # Past the page's own check, the server refuses it too.
    page.evaluate("document.getElementById('dropzone').dataset.maxBytes = String(1 << 30)")
    page.locator("#file").set_input_files(str(big))
    expect(page.locator("#upload-error")).to_contain_text(
        f"larger than the limit of {MAX_UPLOAD_BYTES} bytes"
    )

    no_stack_trace(page)
    assert total_analyses(page) == before


def test_a_finished_analysis_is_deleted_from_the_history(journey: Journey) -> None:
    page = journey.page
    page.goto("/console")
    row = page.locator(f'#history tr[data-analysis-id="{journey.analysis()}"]')
    row.get_by_role("button", name="Delete the analysis of vr_face_1.mp4").click()

    expect(page.locator("#no-analyses")).to_be_visible()
    assert page.request.get(f"/v1/analyses/{journey.analysis()}").status == 404


def test_an_ended_session_leads_to_the_login_page_with_a_message(browser: Browser, gateway_url: str) -> None:
    context = new_context(browser, gateway_url)
    page = context.new_page()
    try:
        sign_up(page)
        page.goto("/console/keys")
        [session] = [cookie for cookie in context.cookies() if cookie.get("name") == "ea_session"]
        assert session.get("httpOnly") is True and session.get("sameSite") == "Lax"
        token = session.get("value")
        ended = httpx.delete(
            f"{gateway_url}/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}
        )
        assert ended.status_code == 204

        # An action on the open page: its API call is refused, and the page goes to the login form.
        page.get_by_label("Name of a new key").fill("late")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#login-message")).to_have_text("Your session has ended. Please log in again.")
        no_stack_trace(page)
        api = page.request.get("/v1/analyses")
        assert api.status == 401 and api.json()["error"]["code"] == "unauthorized"

        # A cookie that was tampered with is no session either.
        context.add_cookies([{"name": "ea_session", "value": "not-a-token", "url": gateway_url}])
        page.goto("/console/usage")
        expect(page.locator("#login-message")).to_have_text("Your session has ended. Please log in again.")
        no_stack_trace(page)

        # Logging in again leads back to the page asked for.
        assert "next=%2Fconsole%2Fusage" in page.url
        expect(page.locator('input[name="next"]')).to_have_value("/console/usage")
    finally:
        context.close()


def test_logging_out_ends_the_session(journey: Journey) -> None:
    page = journey.page
    page.goto("/console")
    page.get_by_role("button", name="Log out").click()

    expect(page.locator("#login-message")).to_have_text("You have logged out.")
    assert page.request.get("/v1/analyses").status == 401
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
