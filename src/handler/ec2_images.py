"""The only EC2 image calls (RegisterImage, DescribeImages, DeregisterImage, tags, description),
used by ``image_lifecycle``. Each goes through ``uploader.aws.call``, the one place that retries.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from uploader import aws
from uploader.errors import FatalError

# DescribeImages answers these for an id that is gone (Unavailable: deregistered not long ago).
GONE_CODES = ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed")


def register_image(parameters: dict[str, Any], tags: dict[str, str]) -> str:
    """RegisterImage with ``tags`` on the image from the start (TagSpecifications), so IAM can
    require the provider's tag on every later change. Raises ``ImageNameInUse`` when the name is
    taken (AMI names are unique per account and region)."""
    name = str(parameters["Name"])

    def attempt() -> str:
        try:
            response = aws.client("ec2").register_image(
                **parameters,
                TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
            )
        except ClientError as error:
            if aws.error_code(error) == "InvalidAMIName.Duplicate":
                raise ImageNameInUse(f"Failed to register image {name!r}: {aws.describe(error)}") from error
            raise
        return str(response["ImageId"])

    return aws.call(f"register image {name!r}", attempt)


def describe_image(image_id: str, *, deadline: float | None = None) -> dict[str, Any] | None:
    """The image as EC2 sees it, or None when there is no such image (any more). ``deadline``
    (epoch seconds) bounds the retries, so a wait never outlives the Lambda."""

    def attempt() -> dict[str, Any] | None:
        try:
            images = aws.client("ec2").describe_images(ImageIds=[image_id])["Images"]
        except ClientError as error:
            if aws.error_code(error) in GONE_CODES:
                return None
            raise
        found = [dict(image) for image in images if image.get("State") != "deregistered"]
        return found[0] if found else None

    return aws.call(f"describe image {image_id}", attempt, deadline=deadline)


def image_named(name: str) -> dict[str, Any] | None:
    """This account's image called ``name``, if any."""

    def attempt() -> dict[str, Any] | None:
        images = aws.client("ec2").describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
        found = [dict(image) for image in images if image.get("Name") == name and image.get("State") != "deregistered"]
        return found[0] if found else None

    return aws.call(f"find image named {name!r}", attempt)


def images_tagged(key: str, value: str) -> list[dict[str, Any]]:
    """This account's images carrying tag ``key`` = ``value`` (not yet deregistered)."""

    def attempt() -> list[dict[str, Any]]:
        found = aws.client("ec2").describe_images(Owners=["self"], Filters=[{"Name": f"tag:{key}", "Values": [value]}])
        return [dict(image) for image in found["Images"] if image.get("State") != "deregistered"]

    return aws.call(f"find images tagged {key}={value}", attempt)


def deregister_image(image_id: str) -> bool:
    """Deregister an image, never its snapshots; False when it was already gone."""

    def attempt() -> bool:
        try:
            aws.client("ec2").deregister_image(ImageId=image_id)
        except ClientError as error:
            if aws.error_code(error) in GONE_CODES:
                return False
            raise
        return True

    return aws.call(f"deregister image {image_id}", attempt)


def set_description(image_id: str, description: str) -> None:
    aws.call(
        f"set the description of image {image_id}",
        lambda: aws.client("ec2").modify_image_attribute(ImageId=image_id, Description={"Value": description}),
    )


def create_tags(image_id: str, tags: dict[str, str]) -> None:
    if tags:
        aws.call(
            f"tag image {image_id}",
            lambda: aws.client("ec2").create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]),
        )


def delete_tags(image_id: str, keys: list[str]) -> None:
    if keys:
        aws.call(
            f"untag image {image_id}",
            lambda: aws.client("ec2").delete_tags(Resources=[image_id], Tags=[{"Key": k} for k in keys]),
        )


class ImageNameInUse(FatalError):
    """RegisterImage refused: another image of the account already has this name."""


class SnapshotNotReady(FatalError):
    """A snapshot in BlockDeviceMappings does not exist or is not ``completed``."""


class ImageNotAvailable(FatalError):
    """The image ended ``failed``/``invalid``/``error``, or was still ``pending`` when the wait ended."""
