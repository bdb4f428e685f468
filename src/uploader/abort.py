"""Abort: after any failure, delete what this request created, so nothing is left pending.

Called by the Abort state through ``app.abort``. Snapshots are found by the request tag, not by
the plan's output, so a Plan that failed after StartSnapshot is cleaned up too.
"""

from __future__ import annotations

from uploader import aws, config, tags
from uploader.spec import Request


def abort(request: Request, execution_name: str, work_bucket: str) -> list[str]:
    """Delete the request's snapshots (any state) and its work files; returns deleted ids."""
    deleted = []
    for snapshot in aws.snapshots_tagged(tags.REQUEST, request.client_token):
        if aws.delete_snapshot(str(snapshot["SnapshotId"])):
            deleted.append(str(snapshot["SnapshotId"]))
    aws.delete_prefix(work_bucket, f"{config.WORK_PREFIX}/{execution_name}/")
    return deleted
