"""A strict EBS direct API for the local emulation, installed over moto's permissive one.

moto's EBS accepts anything (wrong sizes, bad checksums, indexes past the volume, a bogus
aggregate). This module enforces the contract in shared/reference/ebs-direct-api.md with the
real error shapes, keeps EC2's view of the snapshot (pending -> completed) in step, and reports
BlockSize 524288. The EC2 snapshot in moto stays the source of truth for existence, so an EC2
DeleteSnapshot is seen here at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ebs.responses import EBSResponse
from moto.ec2.models import ec2_backends

BLOCK_SIZE = 524_288
BLOCKS_PER_GIB = 2048
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


class EbsError(JsonRESTError):
    """An EBS error as the service sends it: JSON with the error type, message and reason."""

    def __init__(self, error_type: str, message: str, reason: str | None = None, status: int = 400) -> None:
        super().__init__(error_type, message)
        self.code = status
        body: dict[str, Any] = {"__type": error_type, "message": message, "Message": message}
        if reason:
            body["Reason"] = reason
        self.description = json.dumps(body)
        self.headers = {"x-amzn-ErrorType": error_type, "Content-Type": "application/json"}


def validation(message: str, reason: str) -> EbsError:
    return EbsError("ValidationException", message, reason)


@dataclass
class StrictSnapshot:
    snapshot_id: str
    account_id: str
    region: str
    volume_size_gib: int
    encrypted: bool
    kms_key_arn: str | None
    sse_type: str
    description: str
    tags: list[dict[str, str]]
    start_time: float
    status: str = "pending"
    blocks: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)  # index -> (data, raw digest)
    tokens: float = -1.0  # the per-snapshot rate limit's bucket; -1: not yet filled
    tokens_at: float = 0.0


@dataclass
class EmulationSettings:
    """Knobs a test or the CLI can turn."""

    # Seconds between CompleteSnapshot and EC2 reporting "completed" (a snapshot "stays pending").
    completion_delay_seconds: float = 0.5
    # Account-level EBS encryption by default: every new snapshot is encrypted (sse-ebs).
    encryption_by_default: bool = False
    # Realistic mode: each PutSnapshotBlock takes this long, and a token bucket per snapshot
    # (this many calls/s, one second of burst) answers RequestThrottledException past it.
    put_latency_seconds: float = 0.0
    put_rate_per_snapshot: float | None = None


@dataclass
class FaultPlan:
    """Faults the strict EBS injects into PutSnapshotBlock and CompleteSnapshot, as AWS shows them."""

    throttle_share: float = 0.0  # share of block writes answered RequestThrottledException
    server_error_share: float = 0.0  # share answered InternalServerException (HTTP 500)
    burst_after_calls: int | None = None  # after this many block writes, a burst of 503s ...
    burst_length: int = 0  # ... this many in a row
    hanging_calls: int = 0  # this many block writes are accepted and never answered
    hang_seconds: float = 20.0  # longer than the uploader's read timeout
    not_found_seconds: float = 0.0  # "snapshot does not exist" for this long after StartSnapshot
    access_denied_block: int | None = None  # AccessDeniedException for this block index
    error_after_complete: bool = False  # the snapshot ends in state "error" instead of "completed"
    seed: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.lock = threading.Lock()
        self.block_calls = 0

    def note(self, kind: str) -> None:
        with self.lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def before(self, operation: str, snapshot: StrictSnapshot, block_index: int | None) -> None:
        if self.not_found_seconds and time.time() - snapshot.start_time < self.not_found_seconds:
            self.note("not_found")
            raise EbsError(
                "ResourceNotFoundException", f"The snapshot '{snapshot.snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND", 404
            )
        if operation != "PutSnapshotBlock":
            return
        if block_index == self.access_denied_block:
            self.note("access_denied")
            raise EbsError(
                "AccessDeniedException", "User is not authorized to perform: ebs:PutSnapshotBlock", "UNAUTHORIZED_ACCOUNT", 403
            )
        with self.lock:
            self.block_calls += 1
            draw = self.random.random()
            hang = self.hanging_calls > 0 and draw < 0.5
            if hang:
                self.hanging_calls -= 1
            in_burst = self.burst_after_calls is not None and 0 <= self.block_calls - self.burst_after_calls < self.burst_length
        if in_burst:
            self.note("burst_503")
            raise EbsError("ServiceUnavailableException", "Service unavailable.", None, 503)
        if hang:
            self.note("hang")
            time.sleep(self.hang_seconds)  # the caller has long given up; this answer goes nowhere
            raise EbsError("InternalServerException", "Request abandoned by the client.", None, 500)
        if draw < self.throttle_share:
            self.note("throttled")
            raise EbsError("RequestThrottledException", "Rate exceeded for the snapshot.", "RESOURCE_LEVEL_THROTTLE", 400)
        if draw < self.throttle_share + self.server_error_share:
            self.note("server_error")
            raise EbsError("InternalServerException", "An internal error occurred.", None, 500)


class StrictEbs:
    """The state behind the strict EBS endpoints; one per emulation."""

    def __init__(self, settings: EmulationSettings | None = None) -> None:
        self.settings = settings or EmulationSettings()
        self.lock = threading.RLock()
        self.snapshots: dict[str, StrictSnapshot] = {}
        self.client_tokens: dict[str, tuple[str, str]] = {}  # token -> (parameters fingerprint, snapshot id)
        self.calls: dict[str, int] = {}
        # monotonic time of every accepted block write, for measuring the achieved rate
        self.accepted_at: list[float] = []
        # monotonic time at which each snapshot turned completed, for the completion-to-answer latency
        self.completed_at: dict[str, float] = {}
        # A test's hook, called as each operation arrives; it may raise an EbsError to inject a fault.
        self.fault: Callable[[str, str | None, int | None], None] | None = None
        self.faults = FaultPlan()

    # --- helpers --------------------------------------------------------------------------

    def ec2_snapshot(self, snapshot: StrictSnapshot) -> Any:
        return ec2_backends[snapshot.account_id][snapshot.region].snapshots.get(snapshot.snapshot_id)

    def existing(self, snapshot_id: str) -> StrictSnapshot:
        with self.lock:
            snapshot = self.snapshots.get(snapshot_id)
            if snapshot is None or self.ec2_snapshot(snapshot) is None:
                raise EbsError(
                    "ResourceNotFoundException", f"The snapshot '{snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND", 404
                )
            return snapshot

    def count(self, operation: str, snapshot_id: str | None = None, block_index: int | None = None) -> None:
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
        if self.fault is not None:
            self.fault(operation, snapshot_id, block_index)

    # --- operations -----------------------------------------------------------------------

    def start_snapshot(self, account_id: str, region: str, params: dict[str, Any]) -> StrictSnapshot:
        self.count("StartSnapshot")
        volume_size = params.get("VolumeSize")
        if not isinstance(volume_size, int) or not 1 <= volume_size <= 65_536:
            raise validation(f"Volume size {volume_size} is invalid: it must be 1 to 65536 GiB.", "INVALID_VOLUME_SIZE")
        timeout = params.get("Timeout")
        if timeout is not None and not 10 <= int(timeout) <= 4320:
            raise validation(f"Timeout {timeout} must be 10 to 4320 minutes.", "INVALID_PARAMETER_VALUE")
        description = params.get("Description") or ""
        if len(description) > 255:
            raise validation("Description must be at most 255 characters.", "INVALID_PARAMETER_VALUE")
        tags = list(params.get("Tags") or [])
        if len(tags) > 50:
            raise validation("At most 50 tags are allowed.", "INVALID_TAG")
        for tag in tags:
            if not 1 <= len(tag.get("Key", "")) <= 127 or len(tag.get("Value", "")) > 255:
                raise validation(f"Tag {tag!r} is invalid.", "INVALID_TAG")
        kms_key_arn = params.get("KmsKeyArn")
        if kms_key_arn is not None and not KMS_KEY_ARN.match(kms_key_arn):
            raise validation(f"KmsKeyArn {kms_key_arn} is not a KMS key ARN.", "INVALID_CUSTOMER_KEY")
        if params.get("ParentSnapshotId") and params.get("Encrypted"):
            raise validation("ParentSnapshotId cannot be combined with Encrypted.", "INVALID_PARAMETER_VALUE")
        token = params.get("ClientToken")
        if token is not None and len(token) > 64:
            raise validation("ClientToken must be at most 64 characters.", "INVALID_PARAMETER_VALUE")
        fingerprint = json.dumps({k: v for k, v in params.items() if k != "ClientToken"}, sort_keys=True, default=str)
        with self.lock:
            if token is not None and token in self.client_tokens:
                known_fingerprint, snapshot_id = self.client_tokens[token]
                if known_fingerprint != fingerprint:
                    raise EbsError("ConflictException", "The ClientToken was already used with different parameters.", None, 409)
                snapshot = self.snapshots.get(snapshot_id)
                if snapshot is not None:
                    return snapshot
            encrypted = bool(params.get("Encrypted") or kms_key_arn or self.settings.encryption_by_default)
            sse_type = "sse-kms" if kms_key_arn else ("sse-ebs" if encrypted else "none")
            ec2 = ec2_backends[account_id][region]
            volume = ec2.create_volume(size=volume_size, zone_name=f"{region}a", encrypted=encrypted, kms_key_id=kms_key_arn)
            ec2_snapshot = ec2.create_snapshot(volume_id=volume.id, description=description)
            ec2.delete_volume(volume.id)
            ec2_snapshot.status = "pending"
            ec2_snapshot.encrypted = encrypted
            ec2_snapshot.kms_key_id = kms_key_arn
            if tags:
                ec2_snapshot.add_tags({t["Key"]: t["Value"] for t in tags})
            snapshot = StrictSnapshot(
                snapshot_id=ec2_snapshot.id,
                account_id=account_id,
                region=region,
                volume_size_gib=volume_size,
                encrypted=encrypted,
                kms_key_arn=kms_key_arn,
                sse_type=sse_type,
                description=description,
                tags=tags,
                start_time=time.time(),
            )
            self.snapshots[snapshot.snapshot_id] = snapshot
            if token is not None:
                self.client_tokens[token] = (fingerprint, snapshot.snapshot_id)
            return snapshot

    def put_snapshot_block(
        self, snapshot_id: str, block_index: Any, data: bytes, data_length: Any, checksum: Any, algorithm: Any
    ) -> str:
        self.count("PutSnapshotBlock", snapshot_id, int(block_index))
        snapshot = self.existing(snapshot_id)
        self.faults.before("PutSnapshotBlock", snapshot, int(block_index))
        if self.settings.put_latency_seconds:
            time.sleep(self.settings.put_latency_seconds)
        self.take_token(snapshot)
        if snapshot.status != "pending":
            raise validation(
                f"The snapshot '{snapshot_id}' is {snapshot.status}, not pending; blocks cannot be written.",
                "INVALID_SNAPSHOT_ID",
            )
        index = int(block_index)
        if not 0 <= index < snapshot.volume_size_gib * BLOCKS_PER_GIB:
            raise validation(
                f"Block index {index} is outside the volume of {snapshot.volume_size_gib} GiB "
                f"(valid: 0..{snapshot.volume_size_gib * BLOCKS_PER_GIB - 1}).",
                "INVALID_BLOCK",
            )
        if data_length is None or int(data_length) != BLOCK_SIZE:
            raise validation(
                f"DataLength {data_length} is invalid: the only supported size is {BLOCK_SIZE}.", "INVALID_PARAMETER_VALUE"
            )
        if len(data) != BLOCK_SIZE:
            raise validation(f"The block data is {len(data)} bytes; DataLength says {data_length}.", "INVALID_PARAMETER_VALUE")
        if algorithm != "SHA256":
            raise validation(f"ChecksumAlgorithm {algorithm} is not supported; use SHA256.", "INVALID_PARAMETER_VALUE")
        digest = hashlib.sha256(data).digest()
        if checksum != base64.b64encode(digest).decode():
            raise validation(f"The checksum {checksum} does not match the data of block {index}.", "INVALID_BLOCK")
        with self.lock:
            snapshot.blocks[index] = (bytes(data), digest)
            self.accepted_at.append(time.monotonic())
        return base64.b64encode(digest).decode()

    def take_token(self, snapshot: StrictSnapshot) -> None:
        rate = self.settings.put_rate_per_snapshot
        if not rate:
            return
        with self.lock:
            now = time.monotonic()
            if snapshot.tokens < 0:
                snapshot.tokens, snapshot.tokens_at = rate, now
            snapshot.tokens = min(rate, snapshot.tokens + (now - snapshot.tokens_at) * rate)
            snapshot.tokens_at = now
            if snapshot.tokens < 1:
                self.calls["RateThrottled"] = self.calls.get("RateThrottled", 0) + 1
                raise EbsError("RequestThrottledException", "Rate exceeded for the snapshot.", "RESOURCE_LEVEL_THROTTLE", 400)
            snapshot.tokens -= 1

    def complete_snapshot(
        self, snapshot_id: str, changed_blocks_count: Any, checksum: Any, algorithm: Any, aggregation: Any
    ) -> str:
        self.count("CompleteSnapshot", snapshot_id)
        snapshot = self.existing(snapshot_id)
        self.faults.before("CompleteSnapshot", snapshot, None)
        with self.lock:
            if snapshot.status != "pending":
                raise validation(f"The snapshot '{snapshot_id}' is {snapshot.status}, not pending.", "INVALID_SNAPSHOT_ID")
            if changed_blocks_count is None or int(changed_blocks_count) != len(snapshot.blocks):
                raise validation(
                    f"ChangedBlocksCount {changed_blocks_count} does not match the {len(snapshot.blocks)} blocks written.",
                    "INVALID_PARAMETER_VALUE",
                )
            if checksum is not None:
                if algorithm != "SHA256" or aggregation != "LINEAR":
                    raise validation("Only SHA256 checksums with LINEAR aggregation are supported.", "INVALID_PARAMETER_VALUE")
                aggregate = hashlib.sha256(b"".join(snapshot.blocks[i][1] for i in sorted(snapshot.blocks))).digest()
                if checksum != base64.b64encode(aggregate).decode():
                    raise validation(
                        f"The aggregate checksum {checksum} does not match the blocks written.", "INVALID_PARAMETER_VALUE"
                    )
            snapshot.status = "completing"
        timer = threading.Timer(self.settings.completion_delay_seconds, self.mark_completed, args=(snapshot,))
        timer.daemon = True
        timer.start()
        return "pending"

    def mark_completed(self, snapshot: StrictSnapshot) -> None:
        with self.lock:
            ec2_snapshot = self.ec2_snapshot(snapshot)
            if ec2_snapshot is not None and snapshot.status == "completing":
                snapshot.status = "error" if self.faults.error_after_complete else "completed"
                ec2_snapshot.status = snapshot.status
                self.completed_at[snapshot.snapshot_id] = time.monotonic()

    def list_snapshot_blocks(self, snapshot_id: str, max_results: Any, starting_index: Any, next_token: Any) -> dict[str, Any]:
        self.count("ListSnapshotBlocks")
        snapshot = self.existing(snapshot_id)
        if snapshot.status != "completed":
            raise validation(
                f"The snapshot '{snapshot_id}' is {snapshot.status}; only completed snapshots can be read.", "INVALID_SNAPSHOT_ID"
            )
        start = int(next_token) if next_token else int(starting_index or 0)
        limit = int(max_results or 10_000)
        with self.lock:
            indexes = sorted(i for i in snapshot.blocks if i >= start)
        page = indexes[:limit]
        result: dict[str, Any] = {
            "Blocks": [{"BlockIndex": i, "BlockToken": block_token(snapshot_id, i)} for i in page],
            "VolumeSize": snapshot.volume_size_gib,
            "BlockSize": BLOCK_SIZE,
        }
        if len(indexes) > limit:
            result["NextToken"] = str(indexes[limit])
        return result

    def get_snapshot_block(self, snapshot_id: str, block_index: Any, token: Any) -> tuple[bytes, str]:
        self.count("GetSnapshotBlock")
        snapshot = self.existing(snapshot_id)
        if snapshot.status != "completed":
            raise validation(
                f"The snapshot '{snapshot_id}' is {snapshot.status}; only completed snapshots can be read.", "INVALID_SNAPSHOT_ID"
            )
        index = int(block_index)
        if token != block_token(snapshot_id, index) or index not in snapshot.blocks:
            raise validation(f"The block token for block {index} is invalid.", "INVALID_BLOCK_TOKEN")
        data, digest = snapshot.blocks[index]
        return data, base64.b64encode(digest).decode()


def block_token(snapshot_id: str, index: int) -> str:
    return base64.urlsafe_b64encode(f"{snapshot_id}/{index}".encode()).decode()


def install(strict: StrictEbs) -> None:
    """Route moto's EBS endpoints to ``strict`` (process-wide, for the in-process server)."""

    def start_snapshot(self: EBSResponse) -> ActionResult:
        params = {
            name: self._get_param(name)
            for name in (
                "VolumeSize",
                "ParentSnapshotId",
                "Tags",
                "Description",
                "ClientToken",
                "Encrypted",
                "KmsKeyArn",
                "Timeout",
            )
            if self._get_param(name) is not None
        }
        snapshot = strict.start_snapshot(self.current_account, self.region, params)
        result = {
            "SnapshotId": snapshot.snapshot_id,
            "OwnerId": snapshot.account_id,
            "Status": "pending" if snapshot.status in ("pending", "completing") else snapshot.status,
            "StartTime": snapshot.start_time,
            "VolumeSize": snapshot.volume_size_gib,
            "BlockSize": BLOCK_SIZE,
            "Tags": snapshot.tags,
            "Description": snapshot.description,
            "SseType": snapshot.sse_type,
        }
        if snapshot.kms_key_arn:
            result["KmsKeyArn"] = snapshot.kms_key_arn
        return ActionResult(result)

    def put_snapshot_block(self: EBSResponse) -> ActionResult:
        checksum = strict.put_snapshot_block(
            self._get_param("SnapshotId"),
            self._get_param("BlockIndex"),
            self.body if isinstance(self.body, bytes) else (self._get_param("BlockData") or b""),
            self._get_param("DataLength"),
            self._get_param("Checksum"),
            self._get_param("ChecksumAlgorithm"),
        )
        return ActionResult({"Checksum": checksum, "ChecksumAlgorithm": "SHA256"})

    def complete_snapshot(self: EBSResponse) -> ActionResult:
        status = strict.complete_snapshot(
            self._get_param("SnapshotId"),
            self._get_param("ChangedBlocksCount"),
            self._get_param("Checksum"),
            self._get_param("ChecksumAlgorithm"),
            self._get_param("ChecksumAggregationMethod"),
        )
        return ActionResult({"Status": status})

    def list_snapshot_blocks(self: EBSResponse) -> ActionResult:
        return ActionResult(
            strict.list_snapshot_blocks(
                self._get_param("SnapshotId"),
                self._get_param("MaxResults"),
                self._get_param("StartingBlockIndex"),
                self._get_param("NextToken"),
            )
        )

    def get_snapshot_block(self: EBSResponse) -> ActionResult:
        data, checksum = strict.get_snapshot_block(
            self._get_param("SnapshotId"), self._get_param("BlockIndex"), self._get_param("BlockToken")
        )
        return ActionResult({"DataLength": len(data), "BlockData": data, "Checksum": checksum, "ChecksumAlgorithm": "SHA256"})

    def list_changed_blocks(self: EBSResponse) -> ActionResult:
        raise validation("ListChangedBlocks is not emulated.", "INVALID_PARAMETER_VALUE")

    EBSResponse.start_snapshot = start_snapshot  # type: ignore[method-assign]
    EBSResponse.put_snapshot_block = put_snapshot_block  # type: ignore[method-assign]
    EBSResponse.complete_snapshot = complete_snapshot  # type: ignore[method-assign]
    EBSResponse.list_snapshot_blocks = list_snapshot_blocks  # type: ignore[method-assign]
    EBSResponse.get_snapshot_block = get_snapshot_block  # type: ignore[method-assign]
    EBSResponse.list_changed_blocks = list_changed_blocks  # type: ignore[method-assign]
