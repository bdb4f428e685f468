"""Create, Update and Delete of a Custom::EbsImage, called by ``app`` through crhelper.

Everything answers at once (no execution): Create registers an AMI from completed snapshots and
waits, bounded by the Lambda's remaining time, until it is ``available``. Updates of tags and
Description are made in place; any other change registers a new AMI. Delete deregisters only
images this provider registered, and never deletes a snapshot (each belongs to its own resource).
AWS calls go through ``ec2_images`` and ``uploader.aws``, which retry.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aws_lambda_powertools import Logger

from handler import ec2_images
from handler.ec2_images import ImageNameInUse, ImageNotAvailable, SnapshotNotReady
from handler.image_properties import ImageSpec, parse_image_properties
from handler.lifecycle import Answer, Settings
from uploader import aws, tags
from uploader.errors import InvalidProperty, ProviderError

logger = Logger(service="ebs-snapshot-provider", child=True)

IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
# An AMI registered from existing snapshots copies nothing; EC2 usually shows it `available`
# within seconds. The wait is bounded by this and by the Lambda's remaining time less a reserve
# for deregistering and answering (the ProviderFunction's Timeout is 180 s in template.yaml).
AVAILABLE_WAIT_SECONDS = 120
ANSWER_RESERVE_SECONDS = 20
POLL_INTERVAL_SECONDS = 2.0
FAILED_STATES = ("failed", "invalid", "error", "deregistered", "disabled")


def create(event: dict[str, Any], settings: Settings, *, remaining_seconds: float) -> Answer:
    spec = parse_image_properties(event.get("ResourceProperties", {}))
    image = register(event, spec, settings, wait_until=wait_deadline(remaining_seconds))
    return Answer(str(image["ImageId"]), attributes(image, spec))


def update(event: dict[str, Any], settings: Settings, *, remaining_seconds: float) -> Answer:
    spec = parse_image_properties(event.get("ResourceProperties", {}))
    current_id = str(event.get("PhysicalResourceId", ""))
    image = ec2_images.describe_image(current_id) if IMAGE_ID.match(current_id) else None
    if image is not None and is_ours(image, settings) and tag(image, tags.CONTENT) == spec.content_key():
        # Only Tags and Description differ: EC2 changes both in place, and the id stays.
        apply_mutable(current_id, image, spec)
        logger.info("Updated in place", image_id=current_id)
        return Answer(current_id, attributes(image, spec))
    logger.info("Update registers a new image", image_id=current_id)
    replacement = register(event, spec, settings, wait_until=wait_deadline(remaining_seconds))
    return Answer(str(replacement["ImageId"]), attributes(replacement, spec))


def delete(event: dict[str, Any], settings: Settings) -> Answer:
    physical_id = str(event.get("PhysicalResourceId", ""))
    if not IMAGE_ID.match(physical_id):
        # The marker of a failed Create. A failed wait deregisters its image itself, but a Lambda
        # that died between RegisterImage and its answer left one: find it by this resource's tag.
        resource = tags.resource_name(str(event["StackId"]), str(event["LogicalResourceId"]))
        leftovers = [str(i["ImageId"]) for i in ec2_images.images_tagged(tags.RESOURCE, resource) if is_ours(i, settings)]
        for image_id in leftovers:
            ec2_images.deregister_image(image_id)
        logger.info("Delete of a resource that never became an image", physical_resource_id=physical_id, deregistered=leftovers)
        return Answer(physical_id)
    image = ec2_images.describe_image(physical_id)
    if image is None:
        logger.info("Image already gone", image_id=physical_id)
        return Answer(physical_id)
    if not is_ours(image, settings):
        logger.warning("Image not registered by this provider: left alone", image_id=physical_id)
        return Answer(physical_id)
    ec2_images.deregister_image(physical_id)
    logger.info("Image deregistered; its snapshots are kept", image_id=physical_id)
    return Answer(physical_id)


def register(event: dict[str, Any], spec: ImageSpec, settings: Settings, *, wait_until: float) -> dict[str, Any]:
    """Register ``spec`` (or find this resource's image already registered for it, after a
    repeated request or a rollback) and wait until it is available."""
    check_snapshots(spec)
    resource = tags.resource_name(str(event["StackId"]), str(event["LogicalResourceId"]))
    provider_tags = {tags.MANAGED_BY: settings.provider_name, tags.RESOURCE: resource, tags.CONTENT: spec.content_key()}
    try:
        image_id = ec2_images.register_image(spec.register_parameters(), {**spec.tags, **provider_tags})
    except ImageNameInUse as error:
        existing = ec2_images.image_named(spec.name)
        if existing is None or not (is_ours(existing, settings) and tag(existing, tags.RESOURCE) == resource):
            holder = f" by {existing['ImageId']}" if existing else ""
            raise ImageNameInUse(
                f"Name {spec.name!r} is already used{holder}: AMI names are unique per account and region "
                "(an Update that replaces the image needs a new Name too)"
            ) from error
        if tag(existing, tags.CONTENT) != spec.content_key():
            raise ImageNameInUse(
                f"Name {spec.name!r} is still used by {existing['ImageId']}, which this resource registered with "
                "other properties: AMI names are unique per account and region, so an Update that replaces the "
                "image needs a new Name too"
            ) from error
        # The same request delivered again, or a rollback to properties this resource has an image for.
        image_id = str(existing["ImageId"])
        apply_mutable(image_id, existing, spec)
        logger.info("Reusing this resource's image registered with the same properties", image_id=image_id)
        return wait_until_available(image_id, wait_until)
    logger.info("Image registered", image_id=image_id, snapshot_id=spec.root_snapshot_id)
    try:
        return wait_until_available(image_id, wait_until)
    except BaseException:
        # CloudFormation will not hear of this image (FAILED keeps the old id or a marker): take it back.
        try:
            ec2_images.deregister_image(image_id)
        except ProviderError as error:
            logger.error("Could not deregister the image of a failed request", image_id=image_id, error=str(error))
        raise


def check_snapshots(spec: ImageSpec) -> None:
    """Every mapped snapshot must exist, be ``completed``, and fit its volume: say which one is
    not, naming the property, before EC2 does."""
    for index, device in enumerate(spec.block_device_mappings):
        snapshot_id = device.snapshot_id
        if snapshot_id is None:
            continue
        snapshot = aws.describe_snapshot(snapshot_id)
        if snapshot is None:
            raise SnapshotNotReady(f"Snapshot {snapshot_id} in BlockDeviceMappings does not exist")
        state = snapshot.get("State")
        if state != "completed":
            progress = f" ({snapshot['Progress']})" if snapshot.get("Progress") else ""
            raise SnapshotNotReady(
                f"Snapshot {snapshot_id} in BlockDeviceMappings is {state}{progress}; "
                "an image can only be registered from a completed snapshot"
            )
        snapshot_gib = int(snapshot.get("VolumeSize") or 0)
        if device.volume_size_gib is not None and device.volume_size_gib < snapshot_gib:
            raise InvalidProperty(
                f"BlockDeviceMappings[{index}].Ebs.VolumeSize {device.volume_size_gib} GiB is smaller than "
                f"snapshot {snapshot_id} ({snapshot_gib} GiB); leave it out or make it at least {snapshot_gib}"
            )


def wait_until_available(image_id: str, wait_until: float) -> dict[str, Any]:
    """Poll DescribeImages until ``available``. An image that fails, or is still pending at
    ``wait_until`` (epoch seconds), is deregistered, so a failed Create leaves nothing."""
    while True:
        image = ec2_images.describe_image(image_id, deadline=wait_until)
        state = str(image.get("State")) if image else "deregistered"
        if image is not None and state == "available":
            return image
        if state in FAILED_STATES or time.time() + POLL_INTERVAL_SECONDS > wait_until:
            reason = (image or {}).get("StateReason", {}).get("Message", "")
            ec2_images.deregister_image(image_id)
            if state == "pending":
                raise ImageNotAvailable(
                    f"Image {image_id} was still pending when the wait ended; it was deregistered. Retry the deployment"
                )
            raise ImageNotAvailable(f"Image {image_id} ended {state}{': ' + reason if reason else ''}; it was deregistered")
        time.sleep(POLL_INTERVAL_SECONDS)


def wait_deadline(remaining_seconds: float) -> float:
    return time.time() + min(AVAILABLE_WAIT_SECONDS, remaining_seconds - ANSWER_RESERVE_SECONDS)


def apply_mutable(image_id: str, image: dict[str, Any], spec: ImageSpec) -> None:
    """Bring the user's tags and the description of an existing image to ``spec``."""
    current = tags.user_tags(image.get("Tags", []))
    ec2_images.delete_tags(image_id, [key for key in current if key not in spec.tags])
    ec2_images.create_tags(image_id, {k: v for k, v in spec.tags.items() if current.get(k) != v})
    if (image.get("Description") or "") != (spec.description or ""):
        ec2_images.set_description(image_id, spec.description or "")


def attributes(image: dict[str, Any], spec: ImageSpec) -> dict[str, Any]:
    """GetAtt attributes."""
    return {"ImageId": image["ImageId"], "Name": spec.name, "RootSnapshotId": spec.root_snapshot_id}


def is_ours(image: dict[str, Any], settings: Settings) -> bool:
    return tag(image, tags.MANAGED_BY) == settings.provider_name


def tag(image: dict[str, Any], key: str) -> str | None:
    return tags.tag_value(image.get("Tags", []), key)
