"""The only S3, EBS and EC2 calls of the provider, each with timeouts and one retry budget.

botocore's own retries are off: ``call`` is the single place that decides whether an error is
retryable (throttling, 5xx, timeouts, a just-started snapshot not yet visible) or fatal, so retries
are never nested. Callers get either the result or a ``ProviderError`` that names what failed.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

from uploader import config
from uploader.block_put import BlockPutter
from uploader.errors import AwsCallExhausted, AwsCallFailed, DeadlineExceeded, ProviderError, SnapshotInUse
from uploader.pacing import AdaptiveRate
from uploader.range_read import RangeReader

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {"RequestThrottledException", "ThrottlingException", "Throttling", "TooManyRequestsException", "SlowDown"}
)
COMPLETION_MISMATCH = re.compile(r"checksum|ChangedBlocksCount|count", re.IGNORECASE)
AMI_ID = re.compile(r"\bami-[0-9a-f]{8,17}\b")
RETRYABLE_CODES = frozenset(
    {
        "RequestThrottledException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalServerException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# A public uploader saw this ValidationException once and it succeeded on retry.
RETRYABLE_MESSAGES = ("Failed to read block data",)
NETWORK_ERRORS = (
    ConnectTimeoutError,
    EndpointConnectionError,
    # These may hide a request that was carried out; every call here is safe to repeat.
    ReadTimeoutError,
    ConnectionClosedError,
    ResponseStreamingError,
    ProtocolError,
)


_session: boto3.session.Session | None = None
_clients: dict[str, Any] = {}
_block_putter: BlockPutter | None = None
_readers: dict[tuple[str, str, str | None], RangeReader] = {}
READERS_KEPT = 4
_clients_lock = threading.Lock()


def client(service: str) -> Any:
    """One client per service per process. Clients are thread-safe once made, but making them
    from one session in parallel is not (boto3 #1592), so the first use is serialised.

    The pool is sized for the writer threads so no thread waits for a connection.
    """
    made = _clients.get(service)
    if made is None:
        with _clients_lock:
            made = _clients.get(service) or _make_client(service)
            _clients[service] = made
    return made


def block_putter() -> BlockPutter:
    """This process's PutSnapshotBlock sender, made from the ``ebs`` client's endpoint and the
    session's credentials."""
    global _block_putter
    putter = _block_putter
    if putter is None:
        ebs = client("ebs")
        with _clients_lock:
            assert _session is not None  # made with the client
            putter = _block_putter or BlockPutter(ebs, _session.get_credentials())
            _block_putter = putter
    return putter


def forget_clients() -> None:
    """Drop cached clients (the local emulation calls this when its endpoint changes)."""
    global _session, _block_putter
    with _clients_lock:
        _clients.clear()
        _readers.clear()
        _session = _block_putter = None


def _make_client(service: str) -> Any:
    global _session
    if _session is None:
        _session = boto3.session.Session()
    return _session.client(
        service,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        config=Config(
            connect_timeout=config.CONNECT_TIMEOUT_SECONDS,
            read_timeout=config.READ_TIMEOUT_SECONDS,
            retries={"total_max_attempts": 1},
            max_pool_connections=config.WRITER_THREADS + 4,
            # SigV4 for presigned URLs too (range_read.py): botocore may still presign with SigV2,
            # which S3 refuses for KMS-encrypted objects and in newer regions.
            **({"signature_version": "s3v4"} if service == "s3" else {}),
        ),
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def is_retryable(error: Exception, *, snapshot_visible_after: float | None = None) -> bool:
    """Classify one failed attempt. ``snapshot_visible_after`` is the epoch time until which a
    "snapshot does not exist" answer is expected (just after StartSnapshot) and so retryable.
    Every call made through ``call`` must be safe to repeat (see ``complete_snapshot``)."""
    if isinstance(error, NETWORK_ERRORS):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error_code(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in RETRYABLE_CODES or status >= 500:
        return True
    message = error_message(error)
    if any(text in message for text in RETRYABLE_MESSAGES):
        return True
    if code == "ResourceNotFoundException" and snapshot_visible_after is not None:
        return time.time() < snapshot_visible_after
    return False


def call(
    what: str,
    attempt: Callable[[], T],
    *,
    snapshot_visible_after: float | None = None,
    budget_seconds: float = config.CALL_BUDGET_SECONDS,
    max_attempts: int = config.CALL_MAX_ATTEMPTS,
    deadline: float | None = None,
    pacer: AdaptiveRate | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails fatally, or the retry budget is spent.

    ``what`` completes the sentence "Failed to ..." in error messages, e.g.
    "put block 4097 of snap-0123". Backoff is exponential with full jitter. ``deadline`` (epoch
    seconds) cuts the budget short: no retry is started that would end past it. A ``pacer``
    spaces the attempts and learns from throttling (see pacing.py).
    """
    deadline_binds = deadline is not None and deadline - time.time() < budget_seconds
    if deadline is not None:
        budget_seconds = min(budget_seconds, deadline - time.time())
    give_up_at = time.monotonic() + budget_seconds
    for attempt_number in range(1, max_attempts + 1):
        try:
            if pacer is not None:
                pacer.acquire()
            result = attempt()
        except ProviderError:
            raise
        except Exception as error:
            if pacer is not None and isinstance(error, ClientError) and error_code(error) in THROTTLING_CODES:
                pacer.throttled()
            if not is_retryable(error, snapshot_visible_after=snapshot_visible_after):
                raise AwsCallFailed(f"Failed to {what}: {describe(error)}") from error
            delay = random.uniform(0, min(config.BACKOFF_CAP_SECONDS, config.BACKOFF_BASE_SECONDS * 2**attempt_number))
            if deadline_binds and time.monotonic() + delay > give_up_at:
                raise DeadlineExceeded(
                    f"Failed to {what} before the deadline ({describe(error)}); "
                    "the upload cannot finish within the resource's ServiceTimeout"
                ) from error
            if attempt_number == max_attempts or time.monotonic() + delay > give_up_at:
                raise AwsCallExhausted(
                    f"Failed to {what}: still failing after {attempt_number} attempts: {describe(error)}"
                ) from error
            time.sleep(delay)
        else:
            if pacer is not None:
                pacer.succeeded()
            return result
    raise AssertionError("unreachable")  # pragma: no cover


def describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error_message(error)}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


# --- S3 ------------------------------------------------------------------------------------


def head_object(bucket: str, key: str) -> dict[str, Any]:
    """HEAD an object; raises ``AwsCallFailed`` carrying the code (404 NotFound, 403 ...)."""
    return call(f"read s3://{bucket}/{key}", lambda: client("s3").head_object(Bucket=bucket, Key=key))


def get_object_range(
    bucket: str, key: str, first_byte: int, last_byte: int, etag: str | None, *, deadline: float | None = None
) -> bytes:
    """Bytes ``first_byte..last_byte`` (inclusive) of an object, pinned to ``etag`` when given
    so an object replaced mid-upload fails instead of mixing two images (see range_read.py)."""
    reader = range_reader(bucket, key, etag)
    return call(
        f"read bytes {first_byte}-{last_byte} of s3://{bucket}/{key}",
        lambda: reader.read(first_byte, last_byte),
        deadline=deadline,
    )


def read_object_range_into(
    bucket: str, key: str, first_byte: int, last_byte: int, etag: str | None, buffer: bytearray, *, deadline: float
) -> int:
    """``get_object_range`` into the start of ``buffer``; returns the number of bytes read."""
    reader = range_reader(bucket, key, etag)
    return call(
        f"read bytes {first_byte}-{last_byte} of s3://{bucket}/{key}",
        lambda: reader.read_into(first_byte, last_byte, buffer),
        deadline=deadline,
    )


def range_reader(bucket: str, key: str, etag: str | None) -> RangeReader:
    """This process's reader of one object version; a few are kept (a warm sandbox's ranges)."""
    s3 = client("s3")
    with _clients_lock:
        reader = _readers.get((bucket, key, etag))
        if reader is None:
            while len(_readers) >= READERS_KEPT:
                del _readers[next(iter(_readers))]
            reader = _readers[(bucket, key, etag)] = RangeReader(s3, bucket, key, etag)
        return reader


def put_object(bucket: str, key: str, body: bytes) -> None:
    call(f"write s3://{bucket}/{key}", lambda: client("s3").put_object(Bucket=bucket, Key=key, Body=body))


def get_object_if_exists(bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when there is no such key."""

    def attempt() -> bytes | None:
        try:
            data: bytes = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return data

    return call(f"read s3://{bucket}/{key}", attempt)


def delete_prefix(bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix`` (the per-execution work files)."""
    paginator = client("s3").get_paginator("list_objects_v2")
    pages: list[dict[str, Any]] = call(
        f"list s3://{bucket}/{prefix}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix))
    )
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            delete_objects(bucket, keys)


def delete_objects(bucket: str, keys: list[dict[str, str]]) -> None:
    call(
        f"delete {len(keys)} objects from s3://{bucket}",
        lambda: client("s3").delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True}),
    )


# --- EBS direct ----------------------------------------------------------------------------


def start_snapshot(**parameters: Any) -> dict[str, Any]:
    response: dict[str, Any] = call("start snapshot", lambda: client("ebs").start_snapshot(**parameters))
    return response


def put_snapshot_block(
    snapshot_id: str,
    block_index: int,
    data: bytes,
    digest: bytes,
    *,
    snapshot_visible_after: float,
    deadline: float | None = None,
    pacer: AdaptiveRate | None = None,
) -> None:
    """Write one 512 KiB block whose SHA-256 is ``digest`` (see block_put.py for why not the client)."""
    putter = block_putter()
    call(
        f"put block {block_index} of {snapshot_id}",
        lambda: putter.put(snapshot_id, block_index, data, digest),
        snapshot_visible_after=snapshot_visible_after,
        deadline=deadline,
        pacer=pacer,
    )


def complete_snapshot(snapshot_id: str, changed_blocks_count: int, checksum: str | None, *, asked_before: bool) -> None:
    """CompleteSnapshot, safe to repeat. A second call on a snapshot already completing is refused
    with a ValidationException; when this snapshot's completion was asked for before (an earlier
    Finish, or an attempt of this call whose answer was lost), that refusal means done. A
    refusal about the count or checksum always fails."""
    parameters: dict[str, Any] = {"SnapshotId": snapshot_id, "ChangedBlocksCount": changed_blocks_count}
    if checksum:
        parameters.update(Checksum=checksum, ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    attempts = 0

    def attempt() -> None:
        nonlocal attempts
        attempts += 1
        try:
            client("ebs").complete_snapshot(**parameters)
        except ClientError as error:
            repeated = asked_before or attempts > 1
            if repeated and error_code(error) == "ValidationException" and not COMPLETION_MISMATCH.search(error_message(error)):
                return
            raise

    call(f"complete snapshot {snapshot_id}", attempt)


# --- Step Functions (the execution's own status) -----------------------------------------


def execution_status(execution_arn: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None when there is no such execution."""

    def attempt() -> str | None:
        try:
            return str(client("stepfunctions").describe_execution(executionArn=execution_arn)["status"])
        except ClientError as error:
            if error_code(error) == "ExecutionDoesNotExist":
                return None
            raise

    return call(f"describe execution {execution_arn}", attempt)


# --- EC2 -----------------------------------------------------------------------------------


def describe_snapshot(snapshot_id: str) -> dict[str, Any] | None:
    """The snapshot as EC2 sees it, or None when it does not exist."""

    def attempt() -> dict[str, Any] | None:
        try:
            snapshots = client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        except ClientError as error:
            if error_code(error) in ("InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed"):
                return None
            raise
        return dict(snapshots[0]) if snapshots else None

    return call(f"describe snapshot {snapshot_id}", attempt)


def snapshots_tagged(key: str, value: str) -> list[dict[str, Any]]:
    """Snapshots of this account carrying tag ``key=value``."""

    def attempt() -> list[dict[str, Any]]:
        pages = (
            client("ec2")
            .get_paginator("describe_snapshots")
            .paginate(OwnerIds=["self"], Filters=[{"Name": f"tag:{key}", "Values": [value]}])
        )
        return [dict(snapshot) for page in pages for snapshot in page["Snapshots"]]

    return call(f"list snapshots tagged {key}={value}", attempt)


def delete_snapshot(snapshot_id: str) -> bool:
    """Delete a snapshot; False when it was already gone. Raises ``SnapshotInUse`` naming the
    AMIs when an image still uses it."""

    def attempt() -> bool:
        try:
            client("ec2").delete_snapshot(SnapshotId=snapshot_id)
        except ClientError as error:
            if error_code(error) == "InvalidSnapshot.NotFound":
                return False
            if error_code(error) == "InvalidSnapshot.InUse":
                # EC2's message names the image ("... is currently in use by ami-..."); ask if not.
                users = ", ".join(sorted(set(AMI_ID.findall(error_message(error)))) or images_using(snapshot_id)) or "an AMI"
                raise SnapshotInUse(
                    f"Failed to delete snapshot {snapshot_id}: it is in use by {users}; deregister the image first"
                ) from error
            raise
        return True

    return call(f"delete snapshot {snapshot_id}", attempt)


def images_using(snapshot_id: str) -> list[str]:
    """AMI ids whose block device mappings use the snapshot."""

    def attempt() -> list[str]:
        images = client("ec2").describe_images(
            Owners=["self"], Filters=[{"Name": "block-device-mapping.snapshot-id", "Values": [snapshot_id]}]
        )["Images"]
        return [str(image["ImageId"]) for image in images]

    return call(f"list images using {snapshot_id}", attempt)


def create_tags(snapshot_id: str, tags: dict[str, str]) -> None:
    if tags:
        call(
            f"tag snapshot {snapshot_id}",
            lambda: client("ec2").create_tags(Resources=[snapshot_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]),
        )


def delete_tags(snapshot_id: str, keys: list[str]) -> None:
    if keys:
        call(
            f"untag snapshot {snapshot_id}",
            lambda: client("ec2").delete_tags(Resources=[snapshot_id], Tags=[{"Key": k} for k in keys]),
        )
