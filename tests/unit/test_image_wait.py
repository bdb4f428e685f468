"""The bounded wait for an image to become available, against a fake ``ec2_images`` seam."""

from __future__ import annotations

import time
from typing import Any

import pytest

from handler import ec2_images, image_lifecycle
from handler.ec2_images import ImageNotAvailable


class FakeImages:
    def __init__(self, states: list[str], reason: str = "") -> None:
        self.states = states
        self.reason = reason
        self.deregistered: list[str] = []
        self.deadlines: list[float | None] = []

    def describe_image(self, image_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        self.deadlines.append(deadline)
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"ImageId": image_id, "State": state, "StateReason": {"Message": self.reason}}

    def deregister_image(self, image_id: str) -> bool:
        self.deregistered.append(image_id)
        return True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(states: list[str], reason: str = "") -> FakeImages:
        images = FakeImages(states, reason)
        monkeypatch.setattr(ec2_images, "describe_image", images.describe_image)
        monkeypatch.setattr(ec2_images, "deregister_image", images.deregister_image)
        monkeypatch.setattr(image_lifecycle, "POLL_INTERVAL_SECONDS", 0.01)
        return images

    return install


def test_wait_returns_the_image_once_it_is_available(fake: Any) -> None:
    images = fake(["pending", "pending", "available"])
    wait_until = time.time() + 5
    assert image_lifecycle.wait_until_available("ami-0123456789abcdef0", wait_until)["State"] == "available"
    assert images.deregistered == []
    assert images.deadlines == [wait_until] * 3  # each look's retries end with the wait, inside the Lambda


def test_an_image_that_fails_is_deregistered_and_the_reason_given(fake: Any) -> None:
    images = fake(["pending", "failed"], reason="Snapshot is corrupt")
    with pytest.raises(ImageNotAvailable, match="ami-0123456789abcdef0 ended failed: Snapshot is corrupt"):
        image_lifecycle.wait_until_available("ami-0123456789abcdef0", time.time() + 5)
    assert images.deregistered == ["ami-0123456789abcdef0"]


def test_an_image_still_pending_at_the_deadline_is_deregistered(fake: Any) -> None:
    images = fake(["pending"])
    started = time.monotonic()
    with pytest.raises(ImageNotAvailable, match="still pending when the wait ended"):
        image_lifecycle.wait_until_available("ami-0123456789abcdef0", time.time() + 0.2)
    assert time.monotonic() - started < 1
    assert images.deregistered == ["ami-0123456789abcdef0"]


def test_the_wait_ends_inside_the_lambdas_remaining_time() -> None:
    # 180 s Lambda: at most AVAILABLE_WAIT_SECONDS; 30 s left: leaves the answer reserve.
    assert image_lifecycle.wait_deadline(180) - time.time() == pytest.approx(image_lifecycle.AVAILABLE_WAIT_SECONDS, abs=1)
    assert image_lifecycle.wait_deadline(30) - time.time() == pytest.approx(30 - image_lifecycle.ANSWER_RESERVE_SECONDS, abs=1)
