"""Plan: HEAD the image, size the volume, cut the image into ranges and start the snapshot.

Called by the state machine's Plan state through ``app.plan``. The range maths is pure
(``plan_ranges``); AWS calls go through ``aws``, which retries them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from uploader import aws, config, geometry, image_format, tags
from uploader.errors import AwsCallFailed, ImageEmpty, ImageNotFound, UploadStopped, VolumeTooSmall
from uploader.spec import Request, SnapshotSpec


@dataclass(frozen=True)
class Job:
    """Everything a worker and Finish need; small, so it fits any state (see tests)."""

    snapshot_id: str
    cfn_request_id: str
    execution_name: str
    image_bucket: str
    image_key: str
    image_etag: str
    image_size: int
    block_count: int
    volume_size_gib: int
    encrypted: bool
    skip_zero_blocks: bool
    snapshot_started_at: float
    deadline: float  # epoch seconds: past it, workers stop and the upload fails (see handler.lifecycle)
    range_blocks: int
    range_count: int
    write_rate_per_worker: float  # PutSnapshotBlock calls/s this worker starts at (pacing.py)
    work_bucket: str
    work_prefix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**data)

    def log_keys(self) -> dict[str, str]:
        """What every log line of this upload carries, so one upload can be followed across functions."""
        return {"snapshot_id": self.snapshot_id, "cfn_request_id": self.cfn_request_id, "execution": self.execution_name}

    def range_span(self, index: int) -> tuple[int, int]:
        """(first block, block count) of range ``index``."""
        return range_span(index, self.range_blocks, self.block_count)

    def report_key(self, index: int) -> str:
        return f"{self.work_prefix}ranges/{index:08d}.bin"

    @property
    def manifest_key(self) -> str:
        return f"{self.work_prefix}ranges.json"

    @property
    def completion_marker_key(self) -> str:
        return f"{self.work_prefix}completion-requested"


def work_prefix(execution_name: str) -> str:
    """Where one execution keeps its files in the work bucket (manifest, reports, notes)."""
    return f"{config.WORK_PREFIX}/{execution_name}/"


def plan_ranges(block_count: int, max_workers: int = config.DEFAULT_MAX_WORKERS) -> tuple[int, int]:
    """(blocks per range, number of ranges) for an image spanning ``block_count`` blocks.

    Aims at ``RANGES_PER_WORKER`` ranges per worker, within ``MIN_RANGE_BLOCKS`` and
    ``MAX_RANGE_BLOCKS``, rounded to whole read chunks (see config.py).
    """
    if block_count <= 0:
        return config.MIN_RANGE_BLOCKS, 0
    wanted = -(-block_count // (max_workers * config.RANGES_PER_WORKER))
    range_blocks = min(config.MAX_RANGE_BLOCKS, max(config.MIN_RANGE_BLOCKS, wanted))
    range_blocks = -(-range_blocks // config.READ_CHUNK_BLOCKS) * config.READ_CHUNK_BLOCKS
    return range_blocks, -(-block_count // range_blocks)


def range_span(index: int, range_blocks: int, block_count: int) -> tuple[int, int]:
    first = index * range_blocks
    return first, min(range_blocks, block_count - first)


def manifest(range_count: int) -> list[dict[str, int]]:
    """The Map's items: one small object per range; workers derive the span from the Job."""
    return [{"index": index} for index in range(range_count)]


def choose_volume_size(spec: SnapshotSpec, image_size: int) -> int:
    needed = geometry.smallest_volume_gib(image_size)
    if needed > geometry.MAX_VOLUME_SIZE_GIB:
        raise VolumeTooSmall(
            f"Image s3://{spec.image_bucket}/{spec.image_key} is {image_size} bytes, larger than the "
            f"largest EBS volume ({geometry.MAX_VOLUME_SIZE_GIB} GiB)"
        )
    if spec.volume_size_gib is None:
        return needed
    if spec.volume_size_gib < needed:
        raise VolumeTooSmall(
            f"VolumeSize {spec.volume_size_gib} GiB cannot hold image s3://{spec.image_bucket}/{spec.image_key} "
            f"of {image_size} bytes; it needs at least {needed} GiB"
        )
    return spec.volume_size_gib


def run(
    spec: SnapshotSpec,
    request: Request,
    *,
    execution_name: str,
    work_bucket: str,
    provider_name: str,
    max_workers: int,
    execution_arn: str | None = None,
    snapshot_write_rate: float = config.SNAPSHOT_WRITE_RATE,
) -> Job:
    """Plan the upload and start the snapshot; returns the ``Job`` the other states share."""
    image = head_image(spec)
    object_size = int(image["ContentLength"])
    if object_size == 0:
        raise ImageEmpty(f"Image s3://{spec.image_bucket}/{spec.image_key} is empty (0 bytes)")
    etag = str(image.get("ETag", ""))
    image_size = inspect_image(spec, object_size, etag).raw_size
    volume_size_gib = choose_volume_size(spec, image_size)
    block_count = geometry.blocks_spanned(image_size)
    range_blocks, range_count = plan_ranges(block_count, max_workers)

    started = start_snapshot(
        spec, request, volume_size_gib, tags.source_identity(spec.image_bucket, spec.image_key, etag), provider_name
    )
    encrypted = bool(started.get("SseType") not in (None, "none") or spec.encrypted or spec.kms_key_arn)
    job = Job(
        snapshot_id=str(started["SnapshotId"]),
        cfn_request_id=request.request_id,
        execution_name=execution_name,
        image_bucket=spec.image_bucket,
        image_key=spec.image_key,
        image_etag=etag,
        image_size=image_size,
        block_count=block_count,
        volume_size_gib=volume_size_gib,
        encrypted=encrypted,
        # An unwritten block of an encrypted snapshot does not read as zeros (coldsnap #395).
        skip_zero_blocks=not encrypted,
        snapshot_started_at=time.time(),
        deadline=request.deadline,
        range_blocks=range_blocks,
        range_count=range_count,
        write_rate_per_worker=snapshot_write_rate / max(1, min(max_workers, range_count)),
        work_bucket=work_bucket,
        work_prefix=work_prefix(execution_name),
    )
    try:
        # A Delete may have stopped this execution while StartSnapshot ran; Abort will not run then.
        if execution_arn and aws.execution_status(execution_arn) not in (None, "RUNNING"):
            raise UploadStopped(f"Execution {execution_arn} was stopped while snapshot {job.snapshot_id} was starting")
        aws.put_object(work_bucket, job.manifest_key, json.dumps(manifest(range_count)).encode())
    except Exception:
        # Nobody else knows this snapshot's id yet: do not leave it pending.
        aws.delete_snapshot(job.snapshot_id)
        raise
    return job


def inspect_image(spec: SnapshotSpec, object_size: int, etag: str) -> image_format.Inspection:
    """Refuse containers and compressed images before any snapshot exists (see image_format)."""
    head = aws.get_object_range(spec.image_bucket, spec.image_key, 0, min(object_size, image_format.HEAD_BYTES) - 1, etag)
    tail = b""
    if object_size >= image_format.VHD_FOOTER_BYTES:
        tail = aws.get_object_range(
            spec.image_bucket, spec.image_key, object_size - image_format.VHD_FOOTER_BYTES, object_size - 1, etag
        )
    return image_format.inspect(head, tail, object_size, f"Image s3://{spec.image_bucket}/{spec.image_key}")


def head_image(spec: SnapshotSpec) -> dict[str, Any]:
    try:
        return aws.head_object(spec.image_bucket, spec.image_key)
    except AwsCallFailed as error:
        raise ImageNotFound(
            f"Image s3://{spec.image_bucket}/{spec.image_key} does not exist or cannot be read: {error}"
        ) from error


def start_snapshot(spec: SnapshotSpec, request: Request, volume_size_gib: int, source: str, provider_name: str) -> dict[str, Any]:
    provider_tags = {
        tags.MANAGED_BY: provider_name,
        tags.REQUEST: request.client_token,
        tags.SOURCE: source,
        tags.CONTENT: spec.content_key(),
        tags.RESOURCE: tags.resource_name(request.stack_id, request.logical_resource_id),
    }
    parameters: dict[str, Any] = {
        "VolumeSize": volume_size_gib,
        "ClientToken": request.client_token,
        "Timeout": config.SNAPSHOT_TIMEOUT_MINUTES,
        "Tags": [{"Key": k, "Value": v} for k, v in {**spec.tags, **provider_tags}.items()],
    }
    if spec.description:
        parameters["Description"] = spec.description
    if spec.encrypted or spec.kms_key_arn:
        parameters["Encrypted"] = True
    if spec.kms_key_arn:
        parameters["KmsKeyArn"] = spec.kms_key_arn
    return aws.start_snapshot(**parameters)
