"""The Grafana dashboard against a real Prometheus: Debian's prometheus scrapes the whole stack (as `make up
MONITORING=1` starts it) while analyses complete and fail, webhooks are delivered, a key is rate limited,
auth is down for a moment and an analysis is deleted; then every PromQL expression of
deploy/grafana/dashboards/emotion-analyzer.json is run through Prometheus' HTTP API and must return data.

Panels whose series only a Kubernetes cluster has (kube-state-metrics, the GPU exporter) are named below
and skipped; their queries must still run. (Handler exceptions have a series only once a handler raised:
that panel's query falls back to `vector(0)`, so "none" reads 0 rather than "No data".)"""

import json
import time
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from devstack import LocalStack, ServiceName, sign_up
from tests.e2e.test_pipeline import _analyse, _upload_three_steps, _wait
from tests.media_factory import MediaSet
from tests.webhook_receiver import ThreadedReceiver

pytestmark = pytest.mark.e2e

DASHBOARD: Final = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/emotion-analyzer.json"
SKIPPED: Final = {
    "Model service replicas": "kube-state-metrics' kube_deployment_status_replicas_available (Kubernetes)",
    "GPU utilisation by pod": "the NVIDIA DCGM exporter (GPU nodes of a cluster)",
    "GPU memory used by pod": "the NVIDIA DCGM exporter (GPU nodes of a cluster)",
}
RATE_WINDOW: Final = "2m"
SCRAPE_INTERVAL_S: Final = 1.0
ARRIVAL_TIMEOUT_S: Final = 60.0


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, with the dashboard's variables filled in as
    Grafana would for "all namespaces" (the local stack's series carry no namespace)."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$namespace", ".*").replace("$__rate_interval", RATE_WINDOW)
            queries.append((panel["title"], expr))
    return queries


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=30)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_series(prometheus: str, expr: str) -> None:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while not query(prometheus, expr):
        assert time.monotonic() < deadline, f"no data for {expr}"
        time.sleep(SCRAPE_INTERVAL_S)


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    full_stack: LocalStack, media: MediaSet
) -> None:
    prometheus = full_stack.start_monitoring(scrape_interval_s=SCRAPE_INTERVAL_S)
    gateway = full_stack.service_url(ServiceName.GATEWAY)
    # Auth down for a moment, first (its restart empties its own counters): a key the gateway has not seen
    # cannot be checked, a 503 (a 5xx on the dashboard).
    other = sign_up(gateway)
    full_stack.stop_service(ServiceName.AUTH)
    try:
        unchecked = httpx.get(
            f"{gateway}/v1/usage", headers={"Authorization": f"Bearer {other.api_key}"}, timeout=30
        )
    finally:
        full_stack.start_service(ServiceName.AUTH)
    assert unchecked.status_code == 503
    account = sign_up(gateway)
    httpx.post(
        f"{gateway}/v1/sessions", json={"email": account.email, "password": account.password}, timeout=30
    )
    headers = {"Authorization": f"Bearer {account.api_key}"}
    with (
        ThreadedReceiver() as threaded,
        httpx.Client(base_url=f"{gateway}/v1", headers=headers, timeout=60) as api,
    ):
        url = threaded.receiver.endpoint()
        hook = api.post("/webhooks", json={"url": url, "events": ["analysis.completed", "analysis.failed"]})
        assert hook.status_code == 201, hook.text
        threaded.receiver.expect(url, hook.json()["secret"])

        completed = _analyse(api, _upload_three_steps(api, media.speech_m4a))
        broken = _analyse(api, _upload_three_steps(api, media.truncated_faststart, "broken.mp4"))
        assert _wait(api, completed["id"])["status"] == "completed"
        assert _wait(api, broken["id"])["status"] == "failed"
        threaded.wait_for(url, 2, ARRIVAL_TIMEOUT_S)
        assert api.get(f"/analyses/{completed['id']}/nothing-here").status_code == 404
        assert api.delete(f"/analyses/{broken['id']}").status_code == 204

        # Over the key's rate: a 429 `rate_limit`.
        statuses = {api.get("/usage").status_code for _ in range(200)}
        assert 429 in statuses

    # Prometheus scrapes every second: wait until it has seen the last of it.
    wait_for_series(prometheus, 'ea_gateway_auth_checks_total{outcome="unavailable"}')
    wait_for_series(prometheus, 'ea_webhook_deliveries_total{outcome="delivered"}')
    time.sleep(3 * SCRAPE_INTERVAL_S)
    up = query(prometheus, "up")
    assert {sample["metric"]["job"] for sample in up} == {
        f"local/{name.value.replace('_', '-')}" for name in ServiceName
    }

    empty = []
    for title, expr in dashboard_queries():
        result = query(prometheus, expr)  # every query parses and runs, skipped panels' too
        if title not in SKIPPED and not result:
            empty.append(f"{title}: {expr}")
    assert empty == []
    assert set(SKIPPED) <= {title for title, _ in dashboard_queries()}
