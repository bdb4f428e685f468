"""One retry budget per AWS call: what is retried, what fails at once."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from uploader import aws, config
from uploader.errors import AwsCallExhausted, AwsCallFailed


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutSnapshotBlock"
    )


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws.time, "sleep", lambda _seconds: None)


@pytest.mark.parametrize(
    "error",
    [
        client_error("RequestThrottledException"),
        client_error("ThrottlingException"),
        client_error("InternalServerException", status=500),
        client_error("Anything", status=503),
        client_error("ValidationException", "Failed to read block data"),
        ReadTimeoutError(endpoint_url="http://ebs"),
    ],
)
def test_transient_errors_are_retryable(error: Exception) -> None:
    assert aws.is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [client_error("AccessDeniedException", status=403), client_error("ValidationException", "INVALID_BLOCK"), ValueError("bug")],
)
def test_fatal_errors_are_not_retryable(error: Exception) -> None:
    assert not aws.is_retryable(error)


def test_snapshot_not_found_is_retryable_only_inside_the_grace_window() -> None:
    not_found = client_error("ResourceNotFoundException", "The snapshot 'snap-1' does not exist.", 404)
    assert aws.is_retryable(not_found, snapshot_visible_after=time.time() + 60)
    assert not aws.is_retryable(not_found, snapshot_visible_after=time.time() - 1)
    assert not aws.is_retryable(not_found)


def test_call_retries_throttling_then_succeeds() -> None:
    attempts = iter([client_error("RequestThrottledException"), client_error("RequestThrottledException"), "ok"])

    def attempt() -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert aws.call("put block 7 of snap-1", attempt) == "ok"


def test_call_fails_at_once_on_access_denied_naming_what_failed() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise client_error("AccessDeniedException", "not authorized", 403)

    with pytest.raises(AwsCallFailed, match="Failed to put block 4097 of snap-1: AccessDeniedException: not authorized"):
        aws.call("put block 4097 of snap-1", attempt)
    assert len(calls) == 1


def test_call_gives_up_after_its_attempt_budget() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise client_error("RequestThrottledException")

    with pytest.raises(AwsCallExhausted, match=f"after {config.CALL_MAX_ATTEMPTS} attempts"):
        aws.call("put block 1 of snap-1", attempt)
    assert len(calls) == config.CALL_MAX_ATTEMPTS


def test_snapshot_not_yet_visible_is_waited_out_for_about_two_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """coldsnap #56: keep retrying "does not exist" right after StartSnapshot for ~2 minutes."""
    clock = {"now": 1_000.0}
    monkeypatch.setattr(aws.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(aws.time, "time", lambda: clock["now"])
    monkeypatch.setattr(aws.time, "sleep", lambda seconds: clock.__setitem__("now", clock["now"] + seconds))
    visible_at = clock["now"] + 100

    def attempt() -> str:
        if clock["now"] < visible_at:
            raise client_error("ResourceNotFoundException", "The snapshot 'snap-1' does not exist.", 404)
        return "written"

    assert (
        aws.call("put block 0 of snap-1", attempt, snapshot_visible_after=clock["now"] + config.SNAPSHOT_VISIBILITY_GRACE_SECONDS)
        == "written"
    )


class FakeEbs:
    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def complete_snapshot(self, **_parameters: object) -> dict[str, str]:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return {"Status": "pending"}


NOT_PENDING = client_error("ValidationException", "The snapshot 'snap-1' is completing, not pending.")


def test_complete_snapshot_whose_answer_was_lost_is_asked_again_and_the_refusal_means_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeEbs(ReadTimeoutError(endpoint_url="http://ebs"), NOT_PENDING)
    monkeypatch.setattr(aws, "client", lambda _service: fake)
    aws.complete_snapshot("snap-1", 3, "c2hh", asked_before=False)
    assert fake.calls == 2


def test_complete_snapshot_asked_before_by_an_earlier_finish_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEbs(NOT_PENDING)
    monkeypatch.setattr(aws, "client", lambda _service: fake)
    aws.complete_snapshot("snap-1", 3, "c2hh", asked_before=True)


def test_complete_snapshot_refused_the_first_time_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "client", lambda _service: FakeEbs(NOT_PENDING))
    with pytest.raises(AwsCallFailed, match="not pending"):
        aws.complete_snapshot("snap-1", 3, "c2hh", asked_before=False)


def test_complete_snapshot_with_a_wrong_checksum_fails_even_when_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    mismatch = client_error("ValidationException", "The aggregate checksum does not match the blocks written.")
    monkeypatch.setattr(aws, "client", lambda _service: FakeEbs(mismatch))
    with pytest.raises(AwsCallFailed, match="checksum"):
        aws.complete_snapshot("snap-1", 3, "c2hh", asked_before=True)
