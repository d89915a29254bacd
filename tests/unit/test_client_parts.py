"""The client's pieces that need no server: its models are the gateway's, the event-stream parser, the
mapping of error answers to exceptions, and that it imports no service and no model code."""

import importlib
import subprocess
import sys

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from emotion_analyzer import errors, models
from emotion_analyzer._calls import api_base
from emotion_analyzer.sse import ServerSentEvent, SseParser

ROUTE_MODULES = ("accounts", "analyses", "analysis_files", "uploads", "usage", "webhooks")


def gateway_answers() -> list[tuple[str, type[BaseModel]]]:
    answers = []
    for name in ROUTE_MODULES:
        router = importlib.import_module(f"services.gateway.api.routes.{name}").router
        for route in router.routes:
            model = route.response_model if isinstance(route, APIRoute) else None
            if isinstance(model, type) and issubclass(model, BaseModel):
                answers.append((f"{sorted(route.methods)[0]} {route.path}", model))
    return answers


@pytest.mark.parametrize(("route", "model"), gateway_answers(), ids=[route for route, _ in gateway_answers()])
def test_the_gateway_answers_with_the_contracts_models_which_the_client_reads(
    route: str, model: type[BaseModel]
) -> None:
    assert model.__module__.startswith("emotion_contract."), f"{route} answers with {model.__module__}"
    assert getattr(models, model.__name__) is model


def test_every_route_module_has_answers() -> None:
    assert len(gateway_answers()) >= 15


def heavy_modules_after(imports: str) -> str:
    probe = (
        f"import sys, {imports}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('services', 'torch', 'transformers', 'matplotlib', 'sqlalchemy', 'faststream'))))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_the_client_imports_no_service_and_no_model_code() -> None:
    assert heavy_modules_after("emotion_analyzer") == ""


def test_the_command_line_reaches_a_server_without_loading_models() -> None:
    assert heavy_modules_after("analyzer.cli, analyzer.remote, analyzer.timeline") == ""


# --- server-sent events --------------------------------------------------------------------------------


def parse(lines: list[str]) -> list[ServerSentEvent]:
    parser = SseParser()
    return [event for line in lines if (event := parser.feed(line)) is not None]


def test_events_end_at_a_blank_line_and_keep_their_name_data_and_id() -> None:
    events = parse(
        ["event: status", 'data: {"a": 1}', "", ": ping - 2025-01-01", "", "event: completed", "data:x", ""]
    )
    assert events == [ServerSentEvent("status", '{"a": 1}'), ServerSentEvent("completed", "x")]


def test_data_lines_join_with_newlines_and_an_unnamed_event_is_a_message() -> None:
    assert parse(["data: first", "data:  second", "id: 7", ""]) == [
        ServerSentEvent("message", "first\n second", "7")
    ]


def test_an_event_without_data_is_not_dispatched_and_unknown_fields_are_ignored() -> None:
    parser = SseParser()
    assert [parser.feed(line) for line in ("event: status", "retry: 100", "colour: red", "")] == [None] * 4
    assert parser.feed("data: after") is None and parser.feed("") == ServerSentEvent("message", "after")


# --- error answers -------------------------------------------------------------------------------------


def answer(
    status: int, body: object = None, *, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("GET", "http://api.test/v1/analyses")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "bad_request", errors.BadRequest),
        (401, "unauthorized", errors.Unauthorized),
        (403, "account_disabled", errors.Forbidden),
        (404, "analysis_not_found", errors.NotFound),
        (409, "analysis_in_progress", errors.Conflict),
        (413, "file_too_large", errors.PayloadTooLarge),
        (415, "not_media", errors.UnsupportedMediaType),
        (422, "empty_file", errors.InvalidRequest),
        (429, "rate_limited", errors.RateLimited),
        (429, "quota_exceeded", errors.QuotaExceeded),
        (503, "auth_unavailable", errors.ServiceUnavailable),
        (500, "internal_error", errors.ServerError),
        (418, "teapot", errors.ApiError),
    ],
)
def test_an_error_answer_becomes_its_exception_with_the_apis_code(
    status: int, code: str, kind: type[errors.ApiError]
) -> None:
    error = errors.error_from_response(answer(status, {"error": {"code": code, "message": "why"}}))
    assert type(error) is kind
    assert (error.status, error.code, error.message) == (status, code, "why")


def test_retry_after_and_validation_details_are_kept() -> None:
    details = [{"loc": ["body", "key"], "message": "Field required", "type": "missing"}]
    refused = errors.error_from_response(
        answer(429, {"error": {"code": "quota_exceeded", "message": "over"}}, headers={"Retry-After": "42"})
    )
    assert isinstance(refused, errors.QuotaExceeded) and refused.retry_after == 42.0
    invalid = errors.error_from_response(
        answer(422, {"error": {"code": "validation_error", "message": "bad", "details": details}})
    )
    assert invalid.details == details


def test_an_answer_not_in_the_apis_shape_still_raises_by_its_status() -> None:
    error = errors.error_from_response(answer(502, text="<html>Bad Gateway</html>"))
    assert (
        isinstance(error, errors.ServerError) and error.code == "http_502" and "Bad Gateway" in error.message
    )
    s3 = errors.upload_error_from_response(
        answer(403, text="<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>")
    )
    assert (s3.status, s3.code, s3.message) == (403, "SignatureDoesNotMatch", "no")


@pytest.mark.parametrize(
    "server", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"]
)
def test_the_server_address_works_with_or_without_the_api_prefix(server: str) -> None:
    assert api_base(server) == "http://h:8000/v1"
