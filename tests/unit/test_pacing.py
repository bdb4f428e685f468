"""Per-worker pacing: a token bucket at the worker's share, slower after throttling, recovering
after, and making up for idle time only up to its burst."""

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
    for _ in range(250):
        rate.acquire()
    assert clock["t"] == pytest.approx(101.0)


def test_idle_time_is_made_up_only_up_to_the_burst(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250, burst_seconds=0.5)
    clock["t"] += 10.0  # idle for 10 s: only 0.5 s of the share may be saved up
    for _ in range(125):
        rate.acquire()
    assert clock["t"] == pytest.approx(110.0)  # the burst went out at once
    for _ in range(250):
        rate.acquire()
    assert clock["t"] == pytest.approx(111.0)  # then back to the share


def test_calls_over_any_window_stay_within_share_plus_one_burst(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(100, burst_seconds=0.5)
    started = clock["t"]
    calls = 0
    for round_ in range(20):
        clock["t"] += 0.3 * (round_ % 3)  # uneven idle gaps, as between ranges
        for _ in range(40):
            rate.acquire()
            calls += 1
    assert calls <= 100 * (clock["t"] - started) + 50 + 1


def test_throttling_slows_the_worker_drops_its_savings_and_successes_win_the_share_back(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250)
    clock["t"] += 5.0
    rate.throttled()
    clock["t"] += pacing.CUT_HOLDOFF_SECONDS
    rate.throttled()
    assert rate.rate == pytest.approx(250 * 0.7 * 0.7)
    before = clock["t"]
    rate.acquire()
    assert clock["t"] > before  # no saved-up burst right after a throttle
    for _ in range(200):
        rate.succeeded()
    assert rate.rate == 250


def test_throttles_of_calls_in_flight_together_cut_the_rate_once(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250)
    for _ in range(32):  # every writer thread's call came back throttled at the same moment
        rate.throttled()
    assert rate.rate == pytest.approx(250 * 0.7)


def test_rate_never_falls_to_zero(clock: dict[str, float]) -> None:
    rate = pacing.AdaptiveRate(250)
    for _ in range(100):
        rate.throttled()
        clock["t"] += pacing.CUT_HOLDOFF_SECONDS
    assert rate.rate == pytest.approx(12.5)


def test_a_sandbox_keeps_one_pacer_per_snapshot_across_ranges(clock: dict[str, float]) -> None:
    first = pacing.for_snapshot("snap-0000000000000000a", 50.0)
    assert pacing.for_snapshot("snap-0000000000000000a", 50.0) is first
    assert pacing.for_snapshot("snap-0000000000000000b", 50.0) is not first
    for index in range(10):
        pacing.for_snapshot(f"snap-{index:017x}", 50.0)
    assert len(pacing._pacers) <= pacing.PACERS_KEPT
