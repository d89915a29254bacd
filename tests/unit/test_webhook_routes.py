"""The webhook routes' contract as OpenAPI documents it: paths, statuses, and the secret only on creation."""

from typing import Any

from fastapi import FastAPI

from services.gateway.api.routes.webhooks import router


def _openapi() -> dict[str, Any]:
    app = FastAPI()
    app.include_router(router, prefix="/v1")
    return app.openapi()


def _response_schema(schema: dict[str, Any], path: str, method: str, status: str) -> str:
    content = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    reference: str = content["$ref"]
    return reference.rsplit("/", 1)[-1]


def test_every_webhook_operation_is_routed_with_its_status() -> None:
    paths = _openapi()["paths"]
    operations = {
        (path, method, next(code for code in spec["responses"] if code.startswith("2")))
        for path, methods in paths.items()
        for method, spec in methods.items()
    }
    assert operations == {
        ("/v1/webhooks", "post", "201"),
        ("/v1/webhooks", "get", "200"),
        ("/v1/webhooks/{webhook_id}", "get", "200"),
        ("/v1/webhooks/{webhook_id}", "delete", "204"),
        ("/v1/webhooks/{webhook_id}/test", "post", "202"),
        ("/v1/webhooks/{webhook_id}/deliveries", "get", "200"),
        ("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}", "get", "200"),
        ("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", "post", "202"),
    }
    assert all(spec["tags"] == ["webhooks"] for methods in paths.values() for spec in methods.values())


def test_only_creation_shows_the_secret() -> None:
    schema = _openapi()
    components = schema["components"]["schemas"]
    assert _response_schema(schema, "/v1/webhooks", "post", "201") == "WebhookCreated"
    assert "secret" in components["WebhookCreated"]["properties"]
    assert _response_schema(schema, "/v1/webhooks/{webhook_id}", "get", "200") == "Webhook"
    assert "secret" not in components["Webhook"]["properties"]
    assert _response_schema(schema, "/v1/webhooks", "get", "200") == "WebhookList"
    assert components["WebhookList"]["properties"]["items"]["items"]["$ref"].endswith("/Webhook")


def test_subscribable_events_exclude_the_test_event() -> None:
    events = _openapi()["components"]["schemas"]["WebhookCreate"]["properties"]["events"]
    assert set(events["items"]["enum"]) == {"analysis.progress", "analysis.completed", "analysis.failed"}
    assert events["minItems"] == 1
