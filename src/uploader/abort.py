"""Abort: after any failure, delete what this request created, so nothing is left pending.

Called by the Abort state through ``app.abort``. Snapshots are found from the plan (when Plan got
that far) and by the request tag, so a Plan that failed after StartSnapshot is cleaned up too.
A worker that fails leaves a note in the work bucket; the first one becomes the FAILED reason,
because a Distributed Map reports its own failure, not the range's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from uploader import aws, tags
from uploader.plan import work_prefix
from uploader.spec import Request


@dataclass
class Cleanup:
    deleted: list[str] = field(default_factory=list)
    reason: str | None = None  # the first failed range's error, when a range failed


def abort(request: Request, execution_name: str, work_bucket: str, planned_snapshot_id: str | None) -> Cleanup:
    """Delete the request's snapshots (any state) and its work files."""
    cleanup = Cleanup(reason=first_range_failure(work_bucket, execution_name))
    candidates = {str(s["SnapshotId"]) for s in aws.snapshots_tagged(tags.REQUEST, request.client_token)}
    if planned_snapshot_id:
        candidates.add(planned_snapshot_id)
    for snapshot_id in sorted(candidates):
        if aws.delete_snapshot(snapshot_id):
            cleanup.deleted.append(snapshot_id)
    aws.delete_prefix(work_bucket, work_prefix(execution_name))
    return cleanup


def failure_key(work_prefix: str, range_index: int) -> str:
    return f"{work_prefix}failures/{range_index:08d}.json"


def record_range_failure(work_bucket: str, work_prefix: str, range_index: int, error: BaseException) -> None:
    """Best effort: the Map will fail anyway; this only makes the reason precise."""
    note = json.dumps({"range": range_index, "error": type(error).__name__, "message": str(error)[:1000]})
    try:
        aws.put_object(work_bucket, failure_key(work_prefix, range_index), note.encode())
    except Exception:  # noqa: BLE001, S110 - never mask the worker's own error
        pass


def first_range_failure(work_bucket: str, execution_name: str) -> str | None:
    prefix = f"{work_prefix(execution_name)}failures/"
    listed = aws.call(
        f"list s3://{work_bucket}/{prefix}",
        lambda: aws.client("s3").list_objects_v2(Bucket=work_bucket, Prefix=prefix, MaxKeys=1),
    )
    contents = listed.get("Contents", [])
    if not contents:
        return None
    note = json.loads(aws.get_object_if_exists(work_bucket, contents[0]["Key"]) or b"{}")
    return f"{note.get('error')} in range {note.get('range')}: {note.get('message')}"
