"""Create, Update and Delete of a Custom::EbsSnapshot, called by ``app`` through crhelper.

Create and replacing Updates start an upload execution and defer the answer: the execution's
Respond state answers CloudFormation within seconds of the snapshot being ``completed``.
Tags-only Updates and Deletes answer at once. Delete touches only snapshots this provider made.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from handler import sfn
from handler.properties import parse_properties, parse_service_timeout
from uploader import aws, config, tags
from uploader.errors import InvalidProperty, ProviderError
from uploader.spec import Request, SnapshotSpec

logger = Logger(service="ebs-snapshot-provider", child=True)

SNAPSHOT_ID = re.compile(r"^snap-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class Settings:
    """The provider deployment this handler belongs to (from template.yaml's environment)."""

    state_machine_arn: str
    provider_name: str
    allowed_buckets: tuple[str, ...]

    @classmethod
    def from_environment(cls) -> Settings:
        buckets = tuple(b.strip() for b in os.environ.get("ALLOWED_IMAGE_BUCKETS", "").split(",") if b.strip())
        return cls(os.environ["STATE_MACHINE_ARN"], os.environ["PROVIDER_NAME"], buckets)


@dataclass(frozen=True)
class Answer:
    """What to tell CloudFormation now; ``deferred`` means the execution will answer instead."""

    physical_resource_id: str
    data: dict[str, Any] = field(default_factory=dict)
    deferred: bool = False


def create(event: dict[str, Any], settings: Settings) -> Answer:
    spec = validated_spec(event, settings)
    return start_upload(event, spec, settings)


def update(event: dict[str, Any], settings: Settings) -> Answer:
    spec = validated_spec(event, settings)
    current_id = str(event.get("PhysicalResourceId", ""))
    snapshot = aws.describe_snapshot(current_id) if SNAPSHOT_ID.match(current_id) else None
    if snapshot is None or not is_ours(snapshot, settings) or tag(snapshot, tags.CONTENT) != spec.content_key():
        # A rollback asks for the properties of a snapshot this resource already has: reuse it.
        snapshot = next(iter(matching_snapshots(event, spec, settings)), None)
    if snapshot is not None:
        # Same bytes, size, encryption and description: only tags can differ, and EC2 retags in place.
        snapshot_id = str(snapshot["SnapshotId"])
        retag(snapshot_id, snapshot, spec.tags)
        logger.info("Updated in place", snapshot_id=snapshot_id, previous_snapshot_id=current_id)
        return Answer(snapshot_id, attributes_from_snapshot(snapshot))
    logger.info("Update replaces the snapshot", snapshot_id=current_id)
    return start_upload(event, spec, settings)


def delete(event: dict[str, Any], settings: Settings) -> Answer:
    physical_id = str(event.get("PhysicalResourceId", ""))
    if not SNAPSHOT_ID.match(physical_id):
        # A Create that failed or outlived its ServiceTimeout: its upload may still be running.
        # Best effort: this Delete must succeed, or the stack's rollback fails too.
        try:
            abandoned = abandon_uploads(event, settings)
        except ProviderError as error:
            logger.error("Could not stop the resource's upload; Abort or the snapshot Timeout will end it", error=str(error))
            abandoned = []
        logger.info("Delete of a resource that never became a snapshot", physical_resource_id=physical_id, deleted=abandoned)
        return Answer(physical_id)
    snapshot = aws.describe_snapshot(physical_id)
    if snapshot is None:
        logger.info("Snapshot already gone", snapshot_id=physical_id)
        return Answer(physical_id)
    if not is_ours(snapshot, settings):
        logger.warning("Snapshot not created by this provider: left alone", snapshot_id=physical_id)
        return Answer(physical_id)
    if snapshot.get("State") == "pending":
        # An upload may still be writing it: stop it first, so it cannot answer afterwards.
        request_token = str(tag(snapshot, tags.REQUEST))
        sfn.stop_upload(sfn.execution_arn(settings.state_machine_arn, request_token), "Deleted by CloudFormation")
    aws.delete_snapshot(physical_id)
    logger.info("Snapshot deleted", snapshot_id=physical_id)
    return Answer(physical_id)


def abandon_uploads(event: dict[str, Any], settings: Settings) -> list[str]:
    """Stop this resource's running uploads and delete every snapshot of it that CloudFormation
    does not know about: not completed, or made by an upload that was still running."""
    stack_id, logical_id = str(event["StackId"]), str(event["LogicalResourceId"])
    stopped = sfn.running_uploads_for(settings.state_machine_arn, stack_id, logical_id)
    for arn in stopped:
        sfn.stop_upload(arn, "CloudFormation deleted the resource before the upload answered")
    deleted = []
    for snapshot in aws.snapshots_tagged(tags.RESOURCE, tags.resource_name(stack_id, logical_id)):
        arn = sfn.execution_arn(settings.state_machine_arn, str(tag(snapshot, tags.REQUEST)))
        if is_ours(snapshot, settings) and (snapshot.get("State") != "completed" or arn in stopped):
            aws.delete_snapshot(str(snapshot["SnapshotId"]))
            deleted.append(str(snapshot["SnapshotId"]))
    return deleted


def matching_snapshots(event: dict[str, Any], spec: SnapshotSpec, settings: Settings) -> list[dict[str, Any]]:
    """Completed snapshots of this resource made for exactly ``spec`` from the object as it is now
    (its source tag still matches), newest first."""
    resource = tags.resource_name(str(event["StackId"]), str(event["LogicalResourceId"]))
    candidates = [
        s
        for s in aws.snapshots_tagged(tags.RESOURCE, resource)
        if is_ours(s, settings) and s.get("State") == "completed" and tag(s, tags.CONTENT) == spec.content_key()
    ]
    if not candidates:
        return []
    try:
        etag = str(aws.head_object(spec.image_bucket, spec.image_key).get("ETag", ""))
    except ProviderError:
        return []  # the object is gone or unreadable: let a new upload report it
    source = tags.source_identity(spec.image_bucket, spec.image_key, etag)
    current = [s for s in candidates if tag(s, tags.SOURCE) == source]
    return sorted(current, key=lambda s: str(s.get("StartTime", "")), reverse=True)


def validated_spec(event: dict[str, Any], settings: Settings) -> SnapshotSpec:
    spec = parse_properties(event.get("ResourceProperties", {}))
    if settings.allowed_buckets and not any(fnmatch.fnmatchcase(spec.image_bucket, p) for p in settings.allowed_buckets):
        raise InvalidProperty(
            f"ImageBucket {spec.image_bucket} is not one this provider may read; allowed: "
            f"{', '.join(settings.allowed_buckets)} (template parameter ImageBuckets)"
        )
    return spec


def start_upload(event: dict[str, Any], spec: SnapshotSpec, settings: Settings) -> Answer:
    request = Request(
        request_type=str(event["RequestType"]),
        request_id=str(event["RequestId"]),
        stack_id=str(event["StackId"]),
        logical_resource_id=str(event["LogicalResourceId"]),
        response_url=str(event["ResponseURL"]),
        physical_resource_id=event.get("PhysicalResourceId"),
        deadline=deadline(parse_service_timeout(event.get("ResourceProperties", {}))),
    )
    arn = sfn.start_upload(
        settings.state_machine_arn, request.client_token, {"request": request.to_dict(), "spec": spec.to_dict()}
    )
    logger.info("Upload started", extra={"execution_arn": arn, **request.log_keys()})
    return Answer(request.physical_resource_id or "", deferred=True)


def deadline(service_timeout_seconds: int | None) -> float:
    """Epoch time by which the upload must answer: inside CloudFormation's ServiceTimeout (one
    hour at most) with a margin, so FAILED arrives before CloudFormation gives up."""
    budget = float(config.EXECUTION_BUDGET_SECONDS)
    if service_timeout_seconds is not None:
        reserve = max(service_timeout_seconds * config.DEADLINE_MARGIN_FRACTION, config.DEADLINE_RESERVE_SECONDS)
        budget = min(budget, max(0.0, service_timeout_seconds - reserve))
    return time.time() + budget


def attributes(result: dict[str, Any]) -> dict[str, Any]:
    """GetAtt attributes from a Finish result (snake_case) in CloudFormation's names."""
    return {
        "SnapshotId": result["snapshot_id"],
        "VolumeSize": result["volume_size_gib"],
        "ImageSize": result["image_size"],
        "BlockCount": result["block_count"],
        "BlocksWritten": result["blocks_written"],
        "BlocksSkipped": result["block_count"] - result["blocks_written"],
        "Checksum": result["checksum"],
    }


def attributes_from_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    stored = json.loads(tag(snapshot, tags.RESULT) or "{}")
    return attributes(
        {
            "snapshot_id": snapshot["SnapshotId"],
            "volume_size_gib": snapshot["VolumeSize"],
            "image_size": stored.get("i", 0),
            "block_count": stored.get("b", 0),
            "blocks_written": stored.get("w", 0),
            "checksum": stored.get("c", ""),
        }
    )


def retag(snapshot_id: str, snapshot: dict[str, Any], wanted: dict[str, str]) -> None:
    current = tags.user_tags(snapshot.get("Tags", []))
    aws.delete_tags(snapshot_id, [key for key in current if key not in wanted])
    aws.create_tags(snapshot_id, {k: v for k, v in wanted.items() if current.get(k) != v})


def is_ours(snapshot: dict[str, Any], settings: Settings) -> bool:
    return tag(snapshot, tags.MANAGED_BY) == settings.provider_name


def tag(snapshot: dict[str, Any], key: str) -> str | None:
    return tags.tag_value(snapshot.get("Tags", []), key)
