"""Per-worker pacing: spaced at the worker's share, slower after throttling, recovering after."""

from __future__ import annotations

import pytest

from uploader import pacing


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    now = {"t": 100.0}
    monkeypatch.setattr(pacing.time, "monotonic", lambda: now["t"])
    monkeypatch.setattr(pacing.time, "sleep", lambda seconds: now.__setitem__("t", now["t"] + seconds))
    return now


def test_calls_are_spaced_at_the_workers_share(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250)
    for _ in range(251):
        rate.acquire()
    assert clock["t"] == pytest.approx(101.0)


def test_throttling_slows_the_worker_and_successes_win_the_share_back(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250)
    rate.throttled()
    rate.throttled()
    assert rate.rate == pytest.approx(250 * 0.7 * 0.7)
    for _ in range(200):
        rate.succeeded()
    assert rate.rate == 250


def test_rate_never_falls_to_zero(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250)
    for _ in range(100):
        rate.throttled()
    assert rate.rate == pytest.approx(12.5)
