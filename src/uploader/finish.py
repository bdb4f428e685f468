"""Finish: check that every range reported, aggregate the checksum and complete the snapshot.

Called by the Finish state through ``app.finish``. Reports are read in range order, a window at
a time, so memory stays bounded whatever the image size.

EC2 shows ``pending`` both before and after CompleteSnapshot, and a second call on a completing
snapshot is refused. A marker in the work bucket records that completion was asked for, so a
re-run of Finish (a Lambda retry), or a retry after a lost answer, takes that refusal as done.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from uploader import aws, digests, tags
from uploader.errors import IncompleteUpload
from uploader.plan import Job

READ_WINDOW = 32


@dataclass(frozen=True)
class Result:
    """The resource's attributes, as CloudFormation will see them (see handler.attributes)."""

    snapshot_id: str
    volume_size_gib: int
    image_size: int
    block_count: int
    blocks_written: int
    blocks_skipped: int
    checksum: str
    completion_requested_at: float  # epoch; the wait loop's poll interval grows from here

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def finish(job: Job) -> Result:
    """Verify the range reports against the plan, then CompleteSnapshot with the aggregate."""
    checksum = digests.LinearChecksum()
    missing: list[int] = []
    for index, report in read_reports(job):
        if report is None:
            missing.append(index)
            continue
        expected = job.range_span(index)
        if (report.first_block, report.block_count) != expected:
            raise IncompleteUpload(
                f"Snapshot {job.snapshot_id}: range {index} reported blocks {report.first_block}+{report.block_count}, "
                f"planned {expected[0]}+{expected[1]}"
            )
        checksum.add(digest for _, digest in report.written)
    if missing:
        spans = ", ".join(f"range {i} (blocks {job.range_span(i)[0]}..{sum(job.range_span(i)) - 1})" for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise IncompleteUpload(
            f"Snapshot {job.snapshot_id}: {len(missing)} of {job.range_count} ranges never reported: {spans}{more}"
        )
    written = checksum.block_count
    aggregate = checksum.value() if written else ""

    request_completion(job, written, aggregate)
    result = Result(
        snapshot_id=job.snapshot_id,
        volume_size_gib=job.volume_size_gib,
        image_size=job.image_size,
        block_count=job.block_count,
        blocks_written=written,
        blocks_skipped=job.block_count - written,
        checksum=aggregate,
        completion_requested_at=time.time(),
    )
    aws.create_tags(job.snapshot_id, {tags.RESULT: json.dumps(compact(result), separators=(",", ":"))})
    return result


def read_reports(job: Job) -> Iterator[tuple[int, digests.RangeReport | None]]:
    """(index, report or None when missing) in range order, ``READ_WINDOW`` fetched in parallel."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, job.range_count, READ_WINDOW):
            indexes = range(start, min(job.range_count, start + READ_WINDOW))
            fetched = pool.map(lambda i: aws.get_object_if_exists(job.work_bucket, job.report_key(i)), indexes)
            for index, data in zip(indexes, fetched, strict=True):
                if data is None:
                    yield index, None
                    continue
                try:
                    yield index, digests.decode(data)
                except ValueError as error:
                    raise IncompleteUpload(f"Snapshot {job.snapshot_id}: report of range {index} is corrupt: {error}") from error


def request_completion(job: Job, changed_blocks_count: int, checksum: str) -> None:
    """CompleteSnapshot, recognising a repeated ask (see ``aws.complete_snapshot``)."""
    current = aws.describe_snapshot(job.snapshot_id)
    if current is not None and current.get("State") == "completed":
        return
    marker = job.completion_marker_key
    asked_before = aws.get_object_if_exists(job.work_bucket, marker) is not None
    if not asked_before:
        aws.put_object(job.work_bucket, marker, b"")
    aws.complete_snapshot(job.snapshot_id, changed_blocks_count, checksum or None, asked_before=asked_before)


def compact(result: Result) -> dict[str, object]:
    """The attributes an in-place Update must return again, short enough for one tag value."""
    return {"i": result.image_size, "b": result.block_count, "w": result.blocks_written, "c": result.checksum}
