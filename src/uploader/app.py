"""Lambda entry points of the data path, one per state of statemachine/ebs_snapshot.asl.json.

Plan -> WriteRanges (Map of write_range) -> Finish -> CheckSnapshot loop; Abort on any failure.
Each entry only unpacks its state input, logs with the keys that follow one upload across
functions, and calls its module. Exceptions propagate: their class name is the state's error.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from uploader import abort as abort_step
from uploader import config, wait, write
from uploader import finish as finish_step
from uploader import plan as plan_step
from uploader.spec import Request, SnapshotSpec

logger = Logger(service="ebs-snapshot-provider")


@logger.inject_lambda_context(clear_state=True)
def plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Plan state: ``{request, spec, execution_name}`` -> ``{job, manifest_key, max_workers}``."""
    request = Request.from_dict(event["request"])
    logger.append_keys(**request.log_keys(), execution=event["execution_name"])
    max_workers = int(os.environ.get("MAX_WORKERS", config.DEFAULT_MAX_WORKERS))
    job = plan_step.run(
        SnapshotSpec.from_dict(event["spec"]),
        request,
        execution_name=event["execution_name"],
        execution_arn=event.get("execution_arn"),
        work_bucket=os.environ["WORK_BUCKET"],
        provider_name=os.environ["PROVIDER_NAME"],
        max_workers=max_workers,
        snapshot_write_rate=float(os.environ.get("WRITE_RATE_PER_SNAPSHOT", config.SNAPSHOT_WRITE_RATE)),
    )
    logger.info(
        "Snapshot started",
        snapshot_id=job.snapshot_id,
        image_size=job.image_size,
        volume_size_gib=job.volume_size_gib,
        range_count=job.range_count,
        range_blocks=job.range_blocks,
        encrypted=job.encrypted,
    )
    return {"job": job.to_dict(), "manifest_key": job.manifest_key, "max_workers": max(1, min(max_workers, job.range_count))}


@logger.inject_lambda_context(clear_state=True)
def write_range(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """WriteRange state (one Map item): ``{job, range: {index}}`` -> counts."""
    job = plan_step.Job.from_dict(event["job"])
    index = int(event["range"]["index"])
    logger.append_keys(**job.log_keys(), range_index=index)
    try:
        result = write.write_range(job, index)
    except Exception as error:
        abort_step.record_range_failure(job.work_bucket, job.work_prefix, index, error)
        raise
    logger.info("Range written", blocks_written=result.blocks_written, blocks_skipped=result.blocks_skipped)
    return {"index": index, "written": result.blocks_written, "skipped": result.blocks_skipped}


@logger.inject_lambda_context(clear_state=True)
def finish(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Finish state: ``{job}`` -> Result (the resource's attributes)."""
    job = plan_step.Job.from_dict(event["job"])
    logger.append_keys(**job.log_keys())
    result = finish_step.finish(job)
    logger.info("Snapshot completion requested", extra=result.to_dict())
    return result.to_dict()


@logger.inject_lambda_context(clear_state=True)
def check_snapshot(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """CheckSnapshot state: ``{snapshot_id, deadline, waiting_since}`` -> ``{state, progress, wait_seconds}``."""
    logger.append_keys(snapshot_id=event["snapshot_id"])
    status = wait.check_snapshot(
        event["snapshot_id"], deadline=float(event["deadline"]), waiting_since=float(event["waiting_since"])
    )
    logger.info("Snapshot state", extra=status)
    return status


@logger.inject_lambda_context(clear_state=True)
def abort(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Abort state: ``{request, execution_name, plan, error}`` -> ``{deleted, reason}``."""
    request = Request.from_dict(event["request"])
    logger.append_keys(**request.log_keys(), execution=event["execution_name"])
    planned = (event.get("plan") or {}).get("job", {}).get("snapshot_id")
    cleanup = abort_step.abort(request, event["execution_name"], os.environ["WORK_BUCKET"], planned)
    logger.warning(
        "Upload aborted", deleted_snapshots=cleanup.deleted, error=event.get("error", {}).get("Error"), reason=cleanup.reason
    )
    return {"deleted": cleanup.deleted, "reason": cleanup.reason}
