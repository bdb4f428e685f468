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


def test_throttling_slows_the_worker_drops_its_savings_and_it_wins_the_share_back_over_seconds(
    clock: dict[str, float],
) -> None:
    rate = pacing.AdaptiveRate(250)
    clock["t"] += 5.0
    rate.throttled()
    clock["t"] += pacing.CUT_HOLDOFF_SECONDS
    rate.throttled()
    assert rate.rate == pytest.approx(250 * 0.7 * 0.7)
    before = clock["t"]
    rate.acquire()
    assert clock["t"] > before  # no saved-up burst right after a throttle
    for _ in range(1000):  # many successes at once win back nothing: recovery is per second
        rate.succeeded()
    assert rate.rate < 250 * 0.7 * 0.7 + 1
    clock["t"] += 2.0
    rate.succeeded()
    assert rate.rate == pytest.approx(250 * 0.7 * 0.7 + 250 * pacing.RECOVERY_PER_SECOND * 2.0, rel=0.05)
    clock["t"] += 10.0
    rate.succeeded()
    assert rate.rate == 250


def test_a_limit_lower_than_assumed_holds_the_rate_down(clock: dict[str, float]) -> None:
    # EBS takes only half of the share: every second above it brings throttles.
    rate = pacing.AdaptiveRate(100)
    calls = 0
    for _ in range(3000):
        rate.acquire()
        calls += 1
        if rate.rate > 50:
            rate.throttled()
        else:
            rate.succeeded()
    assert calls / (clock["t"] - 100.0) < 60  # about the real limit, not the assumed 100


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


def test_a_sandbox_keeps_its_pacer_across_ranges_and_concurrent_invocations_get_their_own(clock: dict[str, float]) -> None:
    with pacing.worker_pacer("snap-0000000000000000a", 50.0) as first:
        with pacing.worker_pacer("snap-0000000000000000a", 50.0) as concurrent:
            assert concurrent is not first  # two invocations at once in one process: two shares
    with pacing.worker_pacer("snap-0000000000000000a", 50.0) as next_range:
        assert next_range in (first, concurrent)  # a later range reuses a bucket, savings and all
    with pacing.worker_pacer("snap-0000000000000000b", 50.0) as other:
        assert other not in (first, concurrent)
    for index in range(10):
        with pacing.worker_pacer(f"snap-{index:017x}", 50.0):
            pass
    assert len(pacing._idle) <= pacing.PACERS_KEPT


def test_a_rate_of_zero_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="above 0 calls/s"):
        pacing.AdaptiveRate(0.0)
