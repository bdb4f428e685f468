"""Create through the real state machine, then read every block back: bytes must equal the image."""

from __future__ import annotations

import os

from tests.integration.conftest import BLOCK, CloudFormation

MIB = 1 << 20
GIB = 1 << 30


def test_multi_range_image_round_trips_byte_for_byte(cloudformation: CloudFormation) -> None:
    # GIVEN 100 MiB with data, holes and a partial last block: 4 ranges of 64 blocks
    image = cloudformation.image(os.urandom(30 * MIB), 20 * MIB, os.urandom(40 * MIB), 10 * MIB - 1000, os.urandom(1000))
    # WHEN CloudFormation creates the resource
    answer = cloudformation.create(cloudformation.stage(image))
    # THEN it answers SUCCESS with the snapshot id and attributes, and the snapshot is the image
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    data = answer["Data"]
    assert answer["PhysicalResourceId"] == data["SnapshotId"]
    assert (data["VolumeSize"], data["ImageSize"], data["BlockCount"]) == (1, 100 * MIB, 200)
    assert data["BlocksWritten"] == 60 + 80 + 1 and data["BlocksSkipped"] == 200 - 141
    assert len(data["Checksum"]) == 44
    cloudformation.assert_snapshot_equals_image(data["SnapshotId"], image)
    executions = cloudformation.emulation.executions()
    assert any(e["status"] == "SUCCEEDED" for e in executions)


def test_image_not_a_multiple_of_block_size_is_zero_padded(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(3 * BLOCK + 12345))
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["Data"]["BlockCount"], answer["Data"]["BlocksWritten"]) == (4, 4)
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_one_gib_plus_one_byte_needs_a_2_gib_volume(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(MIB), GIB - MIB, b"\x01")
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["Data"]["VolumeSize"] == 2
    assert (answer["Data"]["BlockCount"], answer["Data"]["BlocksWritten"]) == (2049, 3)
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_all_zero_image_completes_with_no_block_written(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(8 * MIB)
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["Data"]["BlocksWritten"], answer["Data"]["BlocksSkipped"], answer["Data"]["Checksum"]) == (0, 16, "")
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_data_past_2_gib_lands_at_its_block_index(cloudformation: CloudFormation) -> None:
    # Block 4097 onwards: past any 32-bit-of-KiB or 2 GiB offset mistake.
    image = cloudformation.image(os.urandom(BLOCK), 2 * GIB + BLOCK - BLOCK, os.urandom(3 * BLOCK))
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["Data"]["VolumeSize"] == 3
    listed = cloudformation.emulation.client("ebs").list_snapshot_blocks(SnapshotId=answer["PhysicalResourceId"])
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [0, 4097, 4098, 4099]
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_encrypted_snapshot_writes_zero_blocks_too(cloudformation: CloudFormation) -> None:
    # An unwritten block of an encrypted snapshot does not read back as zeros, so none is skipped.
    image = cloudformation.image(os.urandom(BLOCK), 3 * BLOCK, os.urandom(BLOCK))
    answer = cloudformation.create({**cloudformation.stage(image), "Encrypted": "true"})
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["Data"]["BlocksWritten"], answer["Data"]["BlocksSkipped"]) == (5, 0)
    snapshot = cloudformation.snapshot(answer["PhysicalResourceId"])
    assert snapshot is not None and snapshot["Encrypted"] is True
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_unencrypted_snapshot_skips_zero_blocks(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(BLOCK), 3 * BLOCK, os.urandom(BLOCK))
    answer = cloudformation.create({**cloudformation.stage(image), "Encrypted": "false"})
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["Data"]["BlocksWritten"], answer["Data"]["BlocksSkipped"]) == (2, 3)
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_snapshot_carries_description_user_tags_and_source_identity(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(BLOCK))
    staged = cloudformation.stage(image)
    answer = cloudformation.create(
        {**staged, "Description": "nixos 25.11 root disk", "Tags": [{"Key": "team", "Value": "images"}]}
    )
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    snapshot = cloudformation.snapshot(answer["PhysicalResourceId"])
    assert snapshot is not None
    tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert snapshot["Description"] == "nixos 25.11 root disk"
    assert tags["team"] == "images"
    assert tags["ebs-snapshot-provider:source"] == "cdk-asset:" + staged["ImageKey"].removesuffix(".raw")
    assert tags["ebs-snapshot-provider:managed-by"] == cloudformation.emulation.stack_name


def test_read_back_catches_a_single_differing_byte(cloudformation: CloudFormation) -> None:
    """The byte-for-byte check the demo relies on is not vacuous."""
    from ebs_snapshot_local.readback import compare_snapshot_with_image

    data = bytearray(os.urandom(3 * BLOCK))
    image = cloudformation.image(bytes(data), BLOCK)
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    data[BLOCK + 17] ^= 0x01
    altered = cloudformation.image(bytes(data), BLOCK - 1, b"\x01")
    comparison = compare_snapshot_with_image(cloudformation.emulation.client("ebs"), answer["PhysicalResourceId"], altered)
    assert comparison.mismatched == [1, 3]


def test_kms_key_makes_an_encrypted_snapshot_that_writes_zero_blocks(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(BLOCK), 2 * BLOCK, os.urandom(BLOCK))
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    answer = cloudformation.create({**cloudformation.stage(image), "KmsKeyArn": key})
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["Data"]["BlocksWritten"], answer["Data"]["BlocksSkipped"]) == (4, 0)
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_account_default_encryption_is_seen_from_start_snapshot_and_zero_blocks_written(cloudformation: CloudFormation) -> None:
    # Encrypted is "false", but the account encrypts every new snapshot (StartSnapshot says sse-ebs)
    settings = cloudformation.emulation.strict.settings
    settings.encryption_by_default = True
    try:
        image = cloudformation.image(os.urandom(BLOCK), 3 * BLOCK, os.urandom(BLOCK))
        answer = cloudformation.create({**cloudformation.stage(image), "Encrypted": "false"})
    finally:
        settings.encryption_by_default = False
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert (answer["Data"]["BlocksWritten"], answer["Data"]["BlocksSkipped"]) == (5, 0)
    # a restored read returns zeros where the image has zeros, because they were written
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_encrypted_read_back_would_catch_skipped_zero_blocks(cloudformation: CloudFormation) -> None:
    """The encrypted read-back is not vacuous: an unwritten block there reads as noise."""
    from ebs_snapshot_local.readback import compare_snapshot_with_image

    image = cloudformation.image(os.urandom(BLOCK), BLOCK, os.urandom(BLOCK))
    answer = cloudformation.create(cloudformation.stage(image))  # unencrypted: block 1 skipped
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    ebs = cloudformation.emulation.client("ebs")
    assert compare_snapshot_with_image(ebs, answer["PhysicalResourceId"], image, encrypted=True).mismatched == [1]
