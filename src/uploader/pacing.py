"""Pacing of PutSnapshotBlock in one worker, so all workers together stay near EBS's per-snapshot
limit instead of far past it (where most calls would be throttled and retried).

Each worker starts at its share of the limit (``Job.write_rate_per_worker``) and adapts:
a throttle answer cuts its rate by a third, and each success wins a little back, up to the share.
Used by ``aws.call`` around each attempt; thread-safe across the worker's writer threads.
"""

from __future__ import annotations

import threading
import time

CUT_ON_THROTTLE = 0.7
RECOVERY_PER_SUCCESS = 0.01  # of the share
FLOOR_FRACTION = 0.05


class AdaptiveRate:
    def __init__(self, share_per_second: float) -> None:
        self.share = share_per_second
        self.rate = share_per_second
        self.floor = max(1.0, share_per_second * FLOOR_FRACTION)
        self.lock = threading.Lock()
        self.next_slot = time.monotonic()

    def acquire(self) -> None:
        """Wait for this worker's next call slot."""
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + 1.0 / self.rate
        if slot > now:
            time.sleep(slot - now)

    def throttled(self) -> None:
        with self.lock:
            self.rate = max(self.floor, self.rate * CUT_ON_THROTTLE)

    def succeeded(self) -> None:
        with self.lock:
            self.rate = min(self.share, self.rate + self.share * RECOVERY_PER_SUCCESS)
