"""Wait: one look at the snapshot's EC2 state, for the state machine's Wait/Check loop.

Called by the CheckSnapshot state through ``app.check_snapshot``. The loop itself lives in the
state machine (a Wait state), so no Lambda sleeps; this module only decides done, again, or fail.
"""

from __future__ import annotations

import time

from uploader import aws, config
from uploader.errors import DeadlineExceeded, SnapshotFailed


def check_snapshot(snapshot_id: str, *, deadline: float, waiting_since: float) -> dict[str, object]:
    """``{"state": "completed"|"pending", "progress", "wait_seconds"}``; raises when it never will be.

    ``wait_seconds`` is how long the state machine waits before looking again: it grows with
    the time already waited (see config.POLL_SCHEDULE), never past the deadline.
    """
    snapshot = aws.describe_snapshot(snapshot_id)
    if snapshot is None:
        raise SnapshotFailed(f"Snapshot {snapshot_id} disappeared while waiting for it to complete")
    state = str(snapshot.get("State"))
    if state == "error":
        reason = snapshot.get("StateMessage") or "no reason given"
        raise SnapshotFailed(f"Snapshot {snapshot_id} ended in state error: {reason}")
    if state != "completed" and time.time() > deadline:
        raise DeadlineExceeded(f"Snapshot {snapshot_id} was still {state} at the deadline")
    now = time.time()
    wait_seconds = next(s for after, s in config.POLL_SCHEDULE if now - waiting_since >= after)
    wait_seconds = max(1, min(wait_seconds, int(deadline - now) + 1))
    return {
        "state": "completed" if state == "completed" else "pending",
        "progress": str(snapshot.get("Progress", "")),
        "wait_seconds": wait_seconds,
    }
