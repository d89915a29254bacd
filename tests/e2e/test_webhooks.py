"""Webhooks against the whole stack: a real analysis is announced to a receiver on loopback, signed, and a
gateway killed while a delivery is in flight sends it again after restarting (the outbox loses nothing)."""

import httpx
import pytest

from devstack import LocalStack, ServiceName
from devstack.probes import wait_until
from tests.e2e.test_pipeline import _analyse, _upload_three_steps, _wait
from tests.media_factory import MediaSet
from tests.webhook_receiver import Plan, ThreadedReceiver

pytestmark = pytest.mark.e2e

ARRIVAL_TIMEOUT_S = 60.0
RECORD_TIMEOUT_S = 10.0


def test_a_completed_analysis_is_announced_even_across_a_gateway_crash(
    api: httpx.Client, media: MediaSet, full_stack: LocalStack
) -> None:
    with ThreadedReceiver() as threaded:
        # The first delivery stalls at the receiver, so the gateway is killed with it in flight.
        url = threaded.receiver.endpoint(Plan(hang_first=1))
        created = api.post(
            "/webhooks", json={"url": url, "events": ["analysis.completed", "analysis.failed"]}
        )
        assert created.status_code == 201, created.text
        webhook = created.json()
        threaded.receiver.expect(url, webhook["secret"])

        analysis = _wait(api, _analyse(api, _upload_three_steps(api, media.speech_m4a))["id"])
        assert analysis["status"] == "completed"
        [stalled] = threaded.wait_for(url, 1, ARRIVAL_TIMEOUT_S)

        full_stack.stop_service(ServiceName.GATEWAY, kill=True)
        threaded.release()
        full_stack.start_service(ServiceName.GATEWAY)

        first, again = threaded.wait_for(url, 2, ARRIVAL_TIMEOUT_S)
    assert stalled is first and first.verified and again.verified
    assert again.headers["webhook-id"] == first.headers["webhook-id"]  # receivers deduplicate by it
    assert again.json["type"] == "analysis.completed" and again.json["data"]["id"] == analysis["id"]
    assert again.json["data"]["result"]["utterances"]

    def recorded() -> bool:
        [delivery] = api.get(f"/webhooks/{webhook['id']}/deliveries").json()["items"]
        metrics = httpx.get(full_stack.metrics_url(ServiceName.GATEWAY), timeout=10).text
        return (
            delivery["status"] == "delivered"
            and 'ea_webhook_deliveries_total{outcome="delivered"}' in metrics
        )

    # The gateway records and counts the attempt after the receiver has answered: a moment after the arrival.
    wait_until(recorded, what="the delivery's record", timeout_s=RECORD_TIMEOUT_S)
    [delivery] = api.get(f"/webhooks/{webhook['id']}/deliveries").json()["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"][-1]["status_code"] == 200
    metrics = httpx.get(full_stack.metrics_url(ServiceName.GATEWAY), timeout=10).text
    assert 'ea_webhook_deliveries_total{outcome="delivered"}' in metrics
