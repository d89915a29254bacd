"""docs/openapi.json and docs/asyncapi.json are what scripts/export_api_docs.py generates from the code now:
a change to the API or the events without `make docs` fails here."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "export_api_docs.py"


@pytest.fixture(scope="module")
def exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_api_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(exporter: ModuleType) -> dict[str, str]:
    return {path.name: content for path, content in exporter.documents().items()}


@pytest.mark.parametrize("name", ["openapi.json", "asyncapi.json"])
def test_the_committed_document_is_what_the_code_generates(
    exporter: ModuleType, generated: dict[str, str], name: str
) -> None:
    committed = exporter.DOCS_DIR / name
    assert committed.exists(), f"docs/{name} is missing: run `make docs`"
    assert committed.read_text() == generated[name], f"docs/{name} is stale: run `make docs`"


def test_the_openapi_document_has_every_public_route(generated: dict[str, str]) -> None:
    paths = json.loads(generated["openapi.json"])["paths"]
    for path in (
        "/v1/users",
        "/v1/sessions",
        "/v1/keys/{key_id}",
        "/v1/upload-url",
        "/v1/analyses/{analysis_id}/events",
        "/v1/usage",
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    ):
        assert path in paths, path


def test_the_asyncapi_document_has_a_channel_and_a_payload_per_topic(generated: dict[str, str]) -> None:
    from emotion_contract.events import Topic

    document = json.loads(generated["asyncapi.json"])
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == {topic.value for topic in Topic}
    schemas = document["components"]["schemas"]
    assert {"AnalysisRequested", "TranscriptReady", "AnalysisCompleted", "AnalysisFailed"} <= set(schemas)
    assert (
        "job_id" in schemas["AnalysisFailed"]["properties"]
        and "code" in schemas["AnalysisFailed"]["properties"]
    )
