import pytest
import urllib3

from emotion_contract.errors import FailureCode
from shared.media.container import MediaError
from shared.stage_errors import INTERNAL_ERROR_REASON, AfterWork, after_work, classify
from shared.storage import ObjectNotFoundError


def test_media_errors_keep_their_code_and_message() -> None:
    failure = classify(MediaError(FailureCode.NO_AUDIO_TRACK, "the video has no audio track"))
    assert failure is not None
    assert (failure.code, failure.reason) == ("no_audio_track", "the video has no audio track")


def test_network_trouble_is_transient_and_retried() -> None:
    assert classify(ConnectionRefusedError("connection refused")) is None
    assert classify(TimeoutError()) is None
    assert classify(urllib3.exceptions.MaxRetryError(None, "/x")) is None  # type: ignore[arg-type]


def test_a_vanished_upload_and_bugs_end_the_job() -> None:
    missing = classify(ObjectNotFoundError("uploads", "k"))
    assert missing is not None and missing.code == "upload_missing"
    bug = classify(ValueError("shapes differ"))
    assert bug is not None and bug.code == "internal_error" and bug.reason == INTERNAL_ERROR_REASON
    assert "shapes differ" not in bug.reason  # the exception's text is for the logs, not the tenant


def test_a_failure_after_work_carries_the_measured_length_and_a_transient_one_stays_transient() -> None:
    with pytest.raises(AfterWork) as raised, after_work(12.5):
        raise RuntimeError("the model broke")
    failure = classify(raised.value)
    assert failure is not None and (failure.code, failure.measured_s) == ("internal_error", 12.5)
    with pytest.raises(AfterWork) as transient, after_work(12.5):
        raise ConnectionError("the store went away")
    assert classify(transient.value) is None
    assert classify(RuntimeError("before any work")).measured_s is None  # type: ignore[union-attr]
