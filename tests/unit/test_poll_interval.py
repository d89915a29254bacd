"""A stage on the longest file must not outlast the broker's poll interval: past it, the broker takes the
partition away, the commit fails and the file is processed again from the start, in a loop."""

from shared.claim_check import ClaimCheck
from shared.service import subscriber_options
from shared.settings import EncoderSettings, PipelineSettings
from shared.storage import ObjectStore


def poll_interval_ms(settings: PipelineSettings) -> int:
    claims = ClaimCheck(ObjectStore.from_settings(settings), "uploads", settings.claim_check_bytes)
    interval: int = subscriber_options(settings, claims)["max_poll_interval_ms"]
    return interval


def test_services_that_take_files_are_allowed_time_per_second_of_the_longest_file() -> None:
    three_hours = EncoderSettings(max_duration_s=3 * 3600)
    assert poll_interval_ms(three_hours) == (900 + 0.5 * 3 * 3600) * 1000
    slow_hardware = EncoderSettings(max_duration_s=3 * 3600, stage_seconds_per_media_second=2.0)
    assert poll_interval_ms(slow_hardware) == (900 + 2.0 * 3 * 3600) * 1000
    # The gateway's stuck-job sweeper gives up on a job before the broker would: 600 s + 0.5 s per second.
    assert poll_interval_ms(three_hours) / 1000 > 600 + 0.5 * 3 * 3600


def test_services_that_handle_only_events_keep_the_base_interval() -> None:
    assert poll_interval_ms(PipelineSettings()) == 900_000
    assert poll_interval_ms(PipelineSettings(kafka_max_poll_interval_s=60)) == 60_000
