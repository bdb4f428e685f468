"""Custom::EbsImage as CloudFormation drives it, in the emulation: an AMI from the snapshot
resource's output, in-place and replacing Updates, Deletes in CloudFormation's order.

The strict EC2 (``strict_ec2``) records what RegisterImage was sent (moto drops the mappings)
and refuses a snapshot that is not completed, so these tests can assert both.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ebs_snapshot_local.emulation import LocalEmulation
from handler import image_lifecycle
from tests.integration.conftest import BLOCK, STACK_ID, CloudFormation, wait_until_completed
from uploader import tags
from uploader.errors import AwsCallExhausted

MANAGED_BY = "ebs-snapshot-provider:managed-by"


class ImageResource:
    """One Custom::EbsImage resource of the consumer stack."""

    def __init__(self, cloudformation: CloudFormation) -> None:
        self.cloudformation = cloudformation
        self.logical_id = "Image" + uuid.uuid4().hex[:8]

    def event(self, request_type: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
        event = self.cloudformation.event(request_type, properties, **extra)
        return {**event, "ResourceType": "Custom::EbsImage", "LogicalResourceId": self.logical_id}

    def create(self, properties: dict[str, Any]) -> dict[str, Any]:
        return self.cloudformation.emulation.send(self.event("Create", properties), timeout_seconds=120)

    def update(self, physical_id: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        event = self.event("Update", new, PhysicalResourceId=physical_id, OldResourceProperties=dict(old))
        return self.cloudformation.emulation.send(event, timeout_seconds=120)

    def delete(self, physical_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        return self.cloudformation.emulation.send(
            self.event("Delete", properties, PhysicalResourceId=physical_id), timeout_seconds=120
        )


def image_properties(snapshot_id: str, name: str, **extra: Any) -> dict[str, Any]:
    """What the example app's Image sends (arm64, UEFI, ENA, IMDSv2), as CloudFormation's strings."""
    return {
        "Name": name,
        "Architecture": "arm64",
        "BootMode": "uefi",
        "EnaSupport": "true",
        "ImdsSupport": "v2.0",
        "VirtualizationType": "hvm",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": "2", "VolumeType": "gp3", "DeleteOnTermination": "true"},
            }
        ],
        **extra,
    }


def images(emulation: LocalEmulation) -> dict[str, dict[str, Any]]:
    """Every image the provider registered (they carry its managed-by tag)."""
    found = emulation.client("ec2").describe_images(Owners=["self"], Filters=[{"Name": "tag-key", "Values": [MANAGED_BY]}])
    return {image["ImageId"]: image for image in found["Images"]}


def user_tags(image: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image.get("Tags", []) if not t["Key"].startswith("ebs-snapshot-provider:")}


@pytest.fixture
def image_resource(cloudformation: CloudFormation) -> Iterator[ImageResource]:
    resource = ImageResource(cloudformation)
    before = set(images(cloudformation.emulation))
    yield resource
    # Every test deregisters what it registered.
    assert set(images(cloudformation.emulation)) - before == set()


@pytest.fixture(scope="module")
def snapshot_id(emulation: LocalEmulation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One completed snapshot of the provider for the tests that only need some snapshot."""
    image = tmp_path_factory.mktemp("image") / "disk.raw"
    image.write_bytes(os.urandom(BLOCK) + bytes(BLOCK) + os.urandom(BLOCK))
    bucket, key = emulation.stage_image(image)
    base = {"StackId": STACK_ID, "LogicalResourceId": "SharedRoot", "ResourceType": "Custom::EbsSnapshot"}
    answer = emulation.send({**base, "RequestType": "Create", "ResourceProperties": {"ImageBucket": bucket, "ImageKey": key}})
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    yield str(answer["PhysicalResourceId"])
    deleted = emulation.send(
        {**base, "RequestType": "Delete", "PhysicalResourceId": answer["PhysicalResourceId"], "ResourceProperties": {}}
    )
    assert deleted["Status"] == "SUCCESS", deleted["Reason"]


def test_image_from_the_snapshot_resource_then_deletes_in_cloudformations_order_leave_nothing(
    cloudformation: CloudFormation, image_resource: ImageResource
) -> None:
    # GIVEN a snapshot made by the Custom::EbsSnapshot resource
    raw = cloudformation.image(os.urandom(2 * BLOCK), BLOCK, os.urandom(BLOCK))
    snapshot_props = {**cloudformation.stage(raw), "Tags": [{"Key": "team", "Value": "images"}]}
    snapshot_answer = cloudformation.create(snapshot_props)
    assert snapshot_answer["Status"] == "SUCCESS", snapshot_answer["Reason"]
    snapshot_id = snapshot_answer["Data"]["SnapshotId"]  # !GetAtt Root.SnapshotId, as CDK passes it

    # WHEN the image resource is created from it
    props = image_properties(snapshot_id, f"nixos-{image_resource.logical_id}", Tags=[{"Key": "os", "Value": "nixos"}])
    answer = image_resource.create(props)

    # THEN it answers with an AMI registered with exactly the mappings and parameters asked for
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    image_id = answer["PhysicalResourceId"]
    assert image_id.startswith("ami-")
    assert answer["Data"] == {"ImageId": image_id, "Name": props["Name"], "RootSnapshotId": snapshot_id}
    sent = cloudformation.emulation.image_links.registered[image_id]
    assert sent["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": 2, "VolumeType": "gp3", "DeleteOnTermination": True},
        }
    ]
    assert (sent["Architecture"], sent["BootMode"], sent["EnaSupport"], sent["ImdsSupport"]) == ("arm64", "uefi", True, "v2.0")
    assert (sent["RootDeviceName"], sent["VirtualizationType"]) == ("/dev/xvda", "hvm")
    # tagged as the provider's at registration, which IAM requires for every later change
    tagged = {t["Key"]: t["Value"] for spec in sent["TagSpecifications"] for t in spec["Tags"]}
    assert tagged[MANAGED_BY] == cloudformation.emulation.stack_name and tagged["os"] == "nixos"
    image = images(cloudformation.emulation)[image_id]
    assert image["State"] == "available" and user_tags(image) == {"os": "nixos"}
    # and the snapshot is held by the image: deleting it first would fail
    held = cloudformation.delete(snapshot_id, snapshot_props)
    assert held["Status"] == "FAILED" and image_id in held["Reason"]

    # WHEN CloudFormation deletes the stack: the image first (it depends on the snapshot), then the snapshot
    assert image_resource.delete(image_id, props)["Status"] == "SUCCESS"
    # THEN the image is gone and its snapshot was kept for its own resource...
    assert image_id not in images(cloudformation.emulation)
    assert cloudformation.snapshot(snapshot_id) is not None
    assert cloudformation.delete(snapshot_id, snapshot_props)["Status"] == "SUCCESS"
    # ...and nothing is left behind
    assert cloudformation.snapshot(snapshot_id) is None
    assert [i for i, s in cloudformation.emulation.image_links.snapshots_by_image.items() if snapshot_id in s] == []


def test_update_of_tags_and_description_keeps_the_image(image_resource: ImageResource, snapshot_id: str) -> None:
    old = image_properties(snapshot_id, f"nixos-{image_resource.logical_id}", Tags=[{"Key": "stage", "Value": "dev"}])
    image_id = image_resource.create(old)["PhysicalResourceId"]
    # WHEN only Tags and Description change
    new = {**old, "Tags": [{"Key": "stage", "Value": "prod"}, {"Key": "team", "Value": "os"}], "Description": "NixOS 25.11"}
    answer = image_resource.update(image_id, old, new)
    # THEN the same AMI is changed in place
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == image_id
    image = images(image_resource.cloudformation.emulation)[image_id]
    assert user_tags(image) == {"stage": "prod", "team": "os"}
    assert image["Description"] == "NixOS 25.11"
    assert image_resource.delete(image_id, new)["Status"] == "SUCCESS"


def test_update_of_the_name_registers_a_new_image_and_the_old_one_is_deregistered_after(
    image_resource: ImageResource, snapshot_id: str
) -> None:
    old = image_properties(snapshot_id, f"nixos-{image_resource.logical_id}")
    first = image_resource.create(old)["PhysicalResourceId"]
    new = {**old, "Name": f"nixos-{image_resource.logical_id}-2", "TpmSupport": "v2.0"}
    answer = image_resource.update(first, old, new)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    second = answer["PhysicalResourceId"]
    assert second != first
    assert image_resource.cloudformation.emulation.image_links.registered[second]["TpmSupport"] == "v2.0"
    # CloudFormation then deletes the old physical id
    assert image_resource.delete(first, old)["Status"] == "SUCCESS"
    assert set(images(image_resource.cloudformation.emulation)) >= {second}
    assert first not in images(image_resource.cloudformation.emulation)
    assert image_resource.delete(second, new)["Status"] == "SUCCESS"


def test_a_replacing_update_that_keeps_the_name_fails_naming_it_and_keeps_the_image(
    image_resource: ImageResource, snapshot_id: str
) -> None:
    old = image_properties(snapshot_id, f"nixos-{image_resource.logical_id}")
    image_id = image_resource.create(old)["PhysicalResourceId"]
    answer = image_resource.update(image_id, old, {**old, "EnaSupport": "false"})
    assert answer["Status"] == "FAILED"
    assert "Name" in answer["Reason"] and "unique" in answer["Reason"]
    assert answer["PhysicalResourceId"] == image_id
    # CloudFormation's rollback: an Update back to the old properties keeps the id
    rolled_back = image_resource.update(image_id, {**old, "EnaSupport": "false"}, old)
    assert (rolled_back["Status"], rolled_back["PhysicalResourceId"]) == ("SUCCESS", image_id)
    assert image_resource.delete(image_id, old)["Status"] == "SUCCESS"


def test_same_create_delivered_twice_registers_one_image(image_resource: ImageResource, snapshot_id: str) -> None:
    props = image_properties(snapshot_id, f"nixos-{image_resource.logical_id}")
    event = image_resource.event("Create", props)
    emulation = image_resource.cloudformation.emulation
    first = emulation.send(dict(event))
    second = emulation.send(dict(event))
    assert first["Status"] == second["Status"] == "SUCCESS", (first["Reason"], second["Reason"])
    assert first["PhysicalResourceId"] == second["PhysicalResourceId"]
    assert image_resource.delete(first["PhysicalResourceId"], props)["Status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"Architecture": "aarch64"}, "Architecture"),
        ({"EnaSupport": "yes"}, "EnaSupport"),
        ({"RootDeviceName": "/dev/sdz"}, "RootDeviceName"),
        ({"Nmae": "typo"}, "Nmae"),
    ],
)
def test_bad_property_answers_failed_naming_it_and_registers_nothing(
    image_resource: ImageResource, snapshot_id: str, change: dict[str, str], named: str
) -> None:
    props = {**image_properties(snapshot_id, f"nixos-{image_resource.logical_id}"), **change}
    answer = image_resource.create(props)
    assert answer["Status"] == "FAILED" and named in answer["Reason"], answer["Reason"]
    # CloudFormation's follow-up Delete of the failed resource is a no-op
    assert image_resource.delete(answer["PhysicalResourceId"], props)["Status"] == "SUCCESS"


def test_create_from_a_snapshot_not_completed_answers_failed_naming_it(
    cloudformation: CloudFormation, image_resource: ImageResource
) -> None:
    # GIVEN a snapshot still pending (started, never completed) and one that does not exist
    pending = cloudformation.plan_directly(cloudformation.image(os.urandom(BLOCK))).snapshot_id
    ec2 = cloudformation.emulation.client("ec2")
    try:
        # WHEN an image is asked for from each
        answer = image_resource.create(image_properties(pending, f"nixos-{image_resource.logical_id}"))
        missing = image_resource.create(image_properties("snap-0123456789abcdef0", f"nixos-{image_resource.logical_id}"))
        # THEN both answer FAILED naming the snapshot and why
        assert answer["Status"] == "FAILED"
        assert pending in answer["Reason"] and "pending" in answer["Reason"] and "completed" in answer["Reason"]
        assert missing["Status"] == "FAILED"
        assert "snap-0123456789abcdef0" in missing["Reason"] and "does not exist" in missing["Reason"]
        # and the emulated EC2 itself refuses it, as EC2 does
        with pytest.raises(ec2.exceptions.ClientError, match="IncorrectState"):
            ec2.register_image(
                Name=f"direct-{image_resource.logical_id}",
                Architecture="arm64",
                RootDeviceName="/dev/xvda",
                BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": pending}}],
            )
    finally:
        ec2.delete_snapshot(SnapshotId=pending)


def test_delete_leaves_an_image_the_provider_did_not_register_and_succeeds_for_one_gone(
    image_resource: ImageResource, snapshot_id: str
) -> None:
    ec2 = image_resource.cloudformation.emulation.client("ec2")
    foreign = ec2.register_image(
        Name=f"foreign-{image_resource.logical_id}",
        Architecture="arm64",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
    )["ImageId"]
    try:
        answer = image_resource.delete(foreign, {})
        assert answer["Status"] == "SUCCESS", answer["Reason"]
        assert ec2.describe_images(ImageIds=[foreign])["Images"][0]["ImageId"] == foreign
    finally:
        ec2.deregister_image(ImageId=foreign)
    # an image already gone (deregistered by hand) is not an error
    assert image_resource.delete(foreign, {})["Status"] == "SUCCESS"


def test_delete_after_a_create_that_died_mid_way_deregisters_the_image_it_left(
    image_resource: ImageResource, snapshot_id: str
) -> None:
    # GIVEN the provider registered an image for this resource and then died before answering,
    # so CloudFormation only ever saw a failed Create (its marker id) ...
    emulation = image_resource.cloudformation.emulation
    ec2 = emulation.client("ec2")
    resource = tags.resource_name(STACK_ID, image_resource.logical_id)
    left = ec2.register_image(
        Name=f"left-{image_resource.logical_id}",
        Architecture="arm64",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
        TagSpecifications=[
            {
                "ResourceType": "image",
                "Tags": [{"Key": MANAGED_BY, "Value": emulation.stack_name}, {"Key": tags.RESOURCE, "Value": resource}],
            }
        ],
    )["ImageId"]
    # ... and another resource's image, which must survive
    neighbour = ImageResource(image_resource.cloudformation)
    other = neighbour.create(image_properties(snapshot_id, f"other-{neighbour.logical_id}"))
    assert other["Status"] == "SUCCESS", other["Reason"]
    # WHEN CloudFormation deletes the failed resource by its marker
    answer = image_resource.delete(f"create-failed-{uuid.uuid4()}", {})
    # THEN the Delete succeeds and the image it left is deregistered
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert left not in images(emulation)
    assert other["PhysicalResourceId"] in images(emulation)
    assert neighbour.delete(other["PhysicalResourceId"], {})["Status"] == "SUCCESS"


def test_a_create_that_fails_after_registering_takes_its_image_back_before_answering(
    image_resource: ImageResource, snapshot_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN EC2 registers the image but DescribeImages keeps failing afterwards
    emulation = image_resource.cloudformation.emulation
    before = set(images(emulation))

    def describe_keeps_failing(image_id: str, **_: Any) -> dict[str, Any] | None:
        raise AwsCallExhausted(f"Failed to describe image {image_id}: still failing after 40 attempts: RequestLimitExceeded")

    monkeypatch.setattr(image_lifecycle.ec2_images, "describe_image", describe_keeps_failing)
    # WHEN CloudFormation creates the image resource
    answer = image_resource.create(image_properties(snapshot_id, f"fails-{image_resource.logical_id}"))
    # THEN it answers FAILED naming the cause, and no image is left even before CloudFormation's Delete
    assert answer["Status"] == "FAILED"
    assert "RequestLimitExceeded" in answer["Reason"]
    assert set(images(emulation)) - before == set()


def test_a_root_volume_smaller_than_its_snapshot_answers_failed_naming_the_property(
    cloudformation: CloudFormation, image_resource: ImageResource
) -> None:
    # GIVEN a completed 4 GiB snapshot
    emulation = cloudformation.emulation
    ebs, ec2 = emulation.client("ebs"), emulation.client("ec2")
    four_gib = ebs.start_snapshot(VolumeSize=4, ClientToken=uuid.uuid4().hex)["SnapshotId"]
    data = os.urandom(BLOCK)
    ebs.put_snapshot_block(
        SnapshotId=four_gib,
        BlockIndex=0,
        BlockData=data,
        DataLength=BLOCK,
        Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        ChecksumAlgorithm="SHA256",
    )
    ebs.complete_snapshot(SnapshotId=four_gib, ChangedBlocksCount=1)
    try:
        wait_until_completed(emulation, four_gib)
        # WHEN an image maps it to a 2 GiB root volume
        answer = image_resource.create(image_properties(four_gib, f"small-{image_resource.logical_id}"))
        # THEN FAILED, naming the property, the snapshot and the size that would do; nothing registered
        assert answer["Status"] == "FAILED"
        assert f"BlockDeviceMappings[0].Ebs.VolumeSize 2 GiB is smaller than snapshot {four_gib} (4 GiB)" in answer["Reason"], (
            answer["Reason"]
        )
        # and the emulated EC2 refuses it too, as EC2 does
        with pytest.raises(ec2.exceptions.ClientError, match="InvalidBlockDeviceMapping"):
            ec2.register_image(
                Name=f"direct-small-{image_resource.logical_id}",
                Architecture="arm64",
                RootDeviceName="/dev/xvda",
                BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": four_gib, "VolumeSize": 2}}],
            )
        # A volume as large as the snapshot, or none given, is fine.
        fits = image_resource.create(
            {
                **image_properties(four_gib, f"fits-{image_resource.logical_id}"),
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": four_gib, "VolumeSize": "4"}}],
            }
        )
        assert fits["Status"] == "SUCCESS", fits["Reason"]
        assert image_resource.delete(fits["PhysicalResourceId"], {})["Status"] == "SUCCESS"
    finally:
        ec2.delete_snapshot(SnapshotId=four_gib)
