"""Pacing of PutSnapshotBlock in one worker, so all workers together stay near EBS's per-snapshot
limit instead of far past it (where most calls would be throttled and retried).

Each worker holds a token bucket filled at its share of the limit (``Job.write_rate_per_worker``)
and adapts: throttling cuts its rate to 70% (once per ``CUT_HOLDOFF_SECONDS`` at most: the
calls in flight are throttled together), and it wins the share back over a few seconds (10% of
it per second), so a limit lower than assumed holds the rate down instead of being retried into.

The bucket holds up to ``BURST_SECONDS`` of the share, so time a worker spends not writing
(between two ranges, or while its threads wait for S3) is made up right after instead of lost:
a worker's calls over any window stay within share x window + one burst, and the workers'
bursts together stay within the burst EBS itself allows. The bucket outlives one range in a
warm Lambda sandbox (``worker_pacer``), which is where most of that idle time falls; each
invocation running at once gets its own (the local emulation runs several in one process).

Used by ``aws.call`` around each attempt; thread-safe across the worker's writer threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

CUT_ON_THROTTLE = 0.7
RECOVERY_PER_SECOND = 0.1  # of the share: from a cut back to the share in 3 s
FLOOR_FRACTION = 0.05
# Seconds of the share a worker may save up. All workers' savings together are this many
# seconds of the per-snapshot limit, which EBS's own burst allowance absorbs (a doubt: AWS does
# not publish it; the local emulation allows one second). Throttling still cuts the rate.
BURST_SECONDS = 0.5
PACERS_KEPT = 4  # snapshots a warm sandbox keeps idle pacers for
# Calls in flight when EBS starts throttling all come back throttled together; they are one
# signal, not many (as TCP cuts its window once per round trip). Without this, 32 threads cut
# the rate 0.7^32-fold at once and the worker crawls at its floor for many seconds.
CUT_HOLDOFF_SECONDS = 0.25


class AdaptiveRate:
    def __init__(self, share_per_second: float, burst_seconds: float = BURST_SECONDS) -> None:
        if not share_per_second > 0:
            raise ValueError(f"A worker's write rate must be above 0 calls/s, not {share_per_second}")
        self.share = share_per_second
        self.rate = share_per_second
        self.floor = max(1.0, share_per_second * FLOOR_FRACTION)
        self.burst_seconds = burst_seconds
        self.lock = threading.Lock()
        # Starts empty: a new worker ramps up at its rate rather than bursting with all the others.
        self.tokens = 0.0
        self.updated = time.monotonic()
        self.last_cut = float("-inf")
        self.recovered = self.updated

    def acquire(self) -> None:
        """Take one call slot, waiting for it if the bucket is empty."""
        with self.lock:
            self._refill()
            self.tokens -= 1.0  # reserve the slot; a negative balance is the wait of this caller
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)

    def throttled(self) -> None:
        with self.lock:
            self._refill()
            self.tokens = min(self.tokens, 0.0)  # no saved-up burst right after a throttle
            if self.updated - self.last_cut >= CUT_HOLDOFF_SECONDS:
                self.rate = max(self.floor, self.rate * CUT_ON_THROTTLE)
                self.last_cut = self.updated
            self.recovered = self.updated  # winning the share back starts after the last throttle

    def _refill(self) -> None:
        now = time.monotonic()
        capacity = max(1.0, self.rate * self.burst_seconds)
        self.tokens = min(capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def succeeded(self) -> None:
        with self.lock:
            now = time.monotonic()
            if self.rate < self.share:
                self._refill()  # credit the time so far at the old rate before raising it
                self.rate = min(self.share, self.rate + self.share * RECOVERY_PER_SECOND * (now - self.recovered))
            self.recovered = now


_idle: dict[tuple[str, float], list[AdaptiveRate]] = {}
_idle_lock = threading.Lock()


@contextmanager
def worker_pacer(snapshot_id: str, share_per_second: float) -> Iterator[AdaptiveRate]:
    """The pacer of one running WriteRange invocation. In Lambda a sandbox runs one invocation at
    a time, so its next range of the same snapshot gets the same bucket back, savings included;
    invocations running at once (in one process, locally) each get their own share."""
    key = (snapshot_id, share_per_second)
    with _idle_lock:
        idle = _idle.get(key, [])
        pacer = idle.pop() if idle else AdaptiveRate(share_per_second)
    try:
        yield pacer
    finally:
        with _idle_lock:
            if key not in _idle and len(_idle) >= PACERS_KEPT:
                del _idle[next(iter(_idle))]
            _idle.setdefault(key, []).append(pacer)
