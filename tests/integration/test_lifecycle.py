"""Create/Update/Delete as CloudFormation drives them, answers checked at the contract."""

from __future__ import annotations

import os
import uuid

from tests.integration.conftest import BLOCK, CloudFormation


def created(cloudformation: CloudFormation, **properties: object) -> tuple[str, dict[str, object]]:
    image = cloudformation.image(os.urandom(2 * BLOCK), BLOCK, os.urandom(BLOCK))
    props = {**cloudformation.stage(image), **properties}
    answer = cloudformation.create(props)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    return str(answer["PhysicalResourceId"]), props


def test_update_of_tags_only_keeps_the_snapshot_and_retags_it(cloudformation: CloudFormation) -> None:
    # GIVEN a snapshot created with tags team=images, stage=dev
    snapshot_id, old = created(cloudformation, Tags=[{"Key": "team", "Value": "images"}, {"Key": "stage", "Value": "dev"}])
    first = cloudformation.snapshot(snapshot_id)
    # WHEN only Tags change
    new = {**old, "Tags": [{"Key": "team", "Value": "platform"}, {"Key": "release", "Value": "25.11"}]}
    answer = cloudformation.update(snapshot_id, old, new)
    # THEN the id is kept, the tags follow, and the attributes come back unchanged
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == snapshot_id
    snapshot = cloudformation.snapshot(snapshot_id)
    assert snapshot is not None and first is not None
    user_tags = {t["Key"]: t["Value"] for t in snapshot["Tags"] if not t["Key"].startswith("ebs-snapshot-provider:")}
    assert user_tags == {"team": "platform", "release": "25.11"}
    assert answer["Data"]["SnapshotId"] == snapshot_id
    assert (answer["Data"]["BlockCount"], answer["Data"]["BlocksWritten"], answer["Data"]["VolumeSize"]) == (4, 3, 1)
    assert len(answer["Data"]["Checksum"]) == 44


def test_update_of_the_image_makes_a_new_snapshot_and_the_old_one_is_deleted_after(cloudformation: CloudFormation) -> None:
    snapshot_id, old = created(cloudformation)
    new_image = cloudformation.image(os.urandom(3 * BLOCK))
    new = {**old, **cloudformation.stage(new_image)}
    answer = cloudformation.update(snapshot_id, old, new)
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    replacement = answer["PhysicalResourceId"]
    assert replacement != snapshot_id
    cloudformation.assert_snapshot_equals_image(replacement, new_image)
    # CloudFormation then deletes the old physical id
    assert cloudformation.delete(snapshot_id, old)["Status"] == "SUCCESS"
    assert cloudformation.snapshot(snapshot_id) is None
    assert cloudformation.snapshot(replacement) is not None
    assert cloudformation.delete(replacement, new)["Status"] == "SUCCESS"


def test_update_of_volume_size_or_description_replaces_the_snapshot(cloudformation: CloudFormation) -> None:
    snapshot_id, old = created(cloudformation)
    answer = cloudformation.update(snapshot_id, old, {**old, "VolumeSize": "2", "Description": "bigger"})
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] != snapshot_id and answer["Data"]["VolumeSize"] == 2


def test_delete_removes_the_snapshot(cloudformation: CloudFormation) -> None:
    snapshot_id, props = created(cloudformation)
    answer = cloudformation.delete(snapshot_id, props)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", snapshot_id)
    assert cloudformation.snapshot(snapshot_id) is None


def test_delete_of_a_failed_create_placeholder_succeeds_touching_nothing(cloudformation: CloudFormation) -> None:
    before = cloudformation.emulation.snapshots()
    for placeholder in ("create-failed-" + str(uuid.uuid4()), "consumer_Root_ABCDEFGH", ""):
        answer = cloudformation.delete(placeholder, {"ImageBucket": "any-bucket", "ImageKey": "k"})
        assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert cloudformation.emulation.snapshots() == before


def test_delete_of_a_snapshot_already_gone_succeeds(cloudformation: CloudFormation) -> None:
    snapshot_id, props = created(cloudformation)
    cloudformation.emulation.client("ec2").delete_snapshot(SnapshotId=snapshot_id)
    answer = cloudformation.delete(snapshot_id, props)
    assert answer["Status"] == "SUCCESS", answer["Reason"]


def test_delete_of_a_snapshot_the_provider_did_not_create_leaves_it(cloudformation: CloudFormation) -> None:
    ec2 = cloudformation.emulation.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="eu-west-1a")
    foreign = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]
    answer = cloudformation.delete(foreign, {"ImageBucket": "any-bucket", "ImageKey": "k"})
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["SnapshotId"] == foreign
    ec2.delete_snapshot(SnapshotId=foreign)


def test_create_of_a_missing_key_answers_failed_naming_it_and_leaves_nothing(cloudformation: CloudFormation) -> None:
    staged = cloudformation.stage(cloudformation.image(os.urandom(BLOCK)))
    answer = cloudformation.create({**staged, "ImageKey": "does-not-exist.raw"})
    assert answer["Status"] == "FAILED"
    assert "ImageNotFound" in answer["Reason"] and "does-not-exist.raw" in answer["Reason"]
    assert answer["PhysicalResourceId"].startswith("create-failed-")
    # CloudFormation's follow-up Delete of the placeholder is a no-op
    assert cloudformation.delete(answer["PhysicalResourceId"], staged)["Status"] == "SUCCESS"


def test_create_of_an_empty_object_answers_failed(cloudformation: CloudFormation) -> None:
    answer = cloudformation.create(cloudformation.stage(cloudformation.image(b"")))
    assert answer["Status"] == "FAILED" and "empty (0 bytes)" in answer["Reason"]


def test_create_with_a_volume_too_small_answers_failed_and_deletes_nothing_it_left(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(BLOCK), (1 << 30), b"\x01")
    answer = cloudformation.create({**cloudformation.stage(image), "VolumeSize": "1"})
    assert answer["Status"] == "FAILED"
    assert "VolumeSize 1 GiB cannot hold" in answer["Reason"] and "at least 2 GiB" in answer["Reason"]


def test_create_with_an_invalid_property_answers_failed_at_once_naming_it(cloudformation: CloudFormation) -> None:
    staged = cloudformation.stage(cloudformation.image(os.urandom(BLOCK)))
    answer = cloudformation.create({**staged, "VolumeSize": "abc"})
    assert answer["Status"] == "FAILED" and "VolumeSize" in answer["Reason"]


def test_create_from_a_bucket_the_provider_may_not_read_answers_failed(cloudformation: CloudFormation) -> None:
    answer = cloudformation.create({"ImageBucket": "someone-elses-bucket", "ImageKey": "disk.raw"})
    assert answer["Status"] == "FAILED"
    assert "someone-elses-bucket" in answer["Reason"] and "ImageBuckets" in answer["Reason"]


def test_same_create_delivered_twice_makes_one_snapshot(cloudformation: CloudFormation) -> None:
    staged = cloudformation.stage(cloudformation.image(os.urandom(2 * BLOCK)))
    event = cloudformation.event("Create", staged)
    emulation = cloudformation.emulation
    before = {s["SnapshotId"] for s in emulation.snapshots()}
    first = emulation.send(dict(event))
    second = emulation.send(dict(event))
    assert first["Status"] == second["Status"] == "SUCCESS"
    assert first["PhysicalResourceId"] == second["PhysicalResourceId"]
    emulation.wait_for_executions()
    made = {s["SnapshotId"] for s in emulation.snapshots()} - before
    assert made == {first["PhysicalResourceId"]}


def test_delete_of_a_snapshot_an_ami_uses_fails_naming_the_ami_and_never_hangs(cloudformation: CloudFormation) -> None:
    # GIVEN an AMI registered from the snapshot
    snapshot_id, props = created(cloudformation)
    ec2 = cloudformation.emulation.client("ec2")
    image_id = ec2.register_image(
        Name="nixos-" + cloudformation.logical_id,
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
    )["ImageId"]
    # WHEN CloudFormation deletes the snapshot resource
    answer = cloudformation.delete(snapshot_id, props)
    # THEN FAILED names the AMI, and the snapshot is still there
    assert answer["Status"] == "FAILED"
    assert image_id in answer["Reason"] and snapshot_id in answer["Reason"]
    assert cloudformation.snapshot(snapshot_id) is not None
    # and once the image is deregistered, Delete succeeds
    ec2.deregister_image(ImageId=image_id)
    assert cloudformation.delete(snapshot_id, props)["Status"] == "SUCCESS"
