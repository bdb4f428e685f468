"""SnapshotAsset and Image synthesize the provider's custom resources (aws_cdk.assertions)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template

from ebs_assets import Image, SnapshotAsset

IMPORTED_TOKEN = {"Fn::ImportValue": "ebs-snapshot-provider-ServiceToken"}


@pytest.fixture
def disk(tmp_path: Path) -> str:
    path = tmp_path / "disk.raw"
    path.write_bytes(b"\x01" * 4096)
    return str(path)


def stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Consumer")


def logical_id(stack: cdk.Stack, resource: cdk.CustomResource) -> str:
    return stack.get_logical_id(cast(cdk.CfnElement, resource.node.default_child))


def test_snapshot_asset_points_the_provider_at_the_staged_file(disk: str) -> None:
    # GIVEN a stack with a SnapshotAsset of a local file and nothing else set
    consumer = stack()
    root = SnapshotAsset(consumer, "Root", path=disk)
    template = Template.from_stack(consumer)
    # THEN one Custom::EbsSnapshot reads the CDK asset from the bootstrap bucket, through the SAM stack's export
    template.resource_count_is("Custom::EbsSnapshot", 1)
    template.has_resource_properties(
        "Custom::EbsSnapshot",
        {
            "ServiceToken": IMPORTED_TOKEN,
            "ImageBucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
            "ImageKey": f"{root.asset_hash}.raw",
            "Tags": [{"Key": "ebs-assets:asset-hash", "Value": root.asset_hash}],
        },
    )
    properties = template.find_resources("Custom::EbsSnapshot")
    assert set(next(iter(properties.values()))["Properties"]) == {"ServiceToken", "ImageBucket", "ImageKey", "Tags"}
    # and its attributes are tokens for the snapshot id and size
    assert consumer.resolve(root.snapshot_id) == {"Fn::GetAtt": [logical_id(consumer, root.resource), "SnapshotId"]}
    assert cdk.Token.is_unresolved(root.volume_size)


def test_snapshot_asset_passes_every_option(disk: str) -> None:
    consumer = stack()
    key = kms.Key(consumer, "Key")
    SnapshotAsset(
        consumer,
        "Root",
        path=disk,
        volume_size=8,
        kms_key=key,
        description="root disk",
        tags={"team": "images"},
        service_token="arn:aws:lambda:eu-west-1:123456789012:function:provider",
        service_timeout=cdk.Duration.minutes(30),
    )
    Template.from_stack(consumer).has_resource_properties(
        "Custom::EbsSnapshot",
        {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:provider",
            "VolumeSize": 8,
            "KmsKeyArn": {"Fn::GetAtt": [Match.string_like_regexp("^Key"), "Arn"]},
            "Description": "root disk",
            "Tags": Match.array_with([{"Key": "team", "Value": "images"}]),
            "ServiceTimeout": "1800",
        },
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"volume_size": 0}, "volume_size 0 is out of range"),
        ({"volume_size": 65537}, "volume_size 65537"),
        ({"description": "x" * 256}, "description is 256 characters"),
        ({"tags": {f"k{i}": "v" for i in range(44)}}, "44 tags"),
    ],
)
def test_snapshot_asset_rejects_what_the_provider_would_at_synth_time(
    disk: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SnapshotAsset(stack(), "Root", path=disk, **options)  # type: ignore[arg-type]


def test_encrypted_false_with_a_key_is_refused(disk: str) -> None:
    consumer = stack()
    with pytest.raises(ValueError, match="encrypted=False contradicts kms_key"):
        SnapshotAsset(consumer, "Root", path=disk, encrypted=False, kms_key=kms.Key(consumer, "Key"))


def test_image_from_a_snapshot_asset_maps_its_snapshot_and_depends_on_it(disk: str) -> None:
    consumer = stack()
    root = SnapshotAsset(consumer, "Root", path=disk)
    ami = Image(
        consumer,
        "Ami",
        name="nixos-test",
        snapshot=root,
        architecture="arm64",
        boot_mode="uefi",
        ena_support=True,
        tpm_support=True,
        imds_support="v2.0",
        volume_size=8,
        tags={"os": "nixos"},
    )
    template = Template.from_stack(consumer)
    snapshot_logical_id = logical_id(consumer, root.resource)
    template.has_resource_properties(
        "Custom::EbsImage",
        {
            "ServiceToken": IMPORTED_TOKEN,
            "Name": "nixos-test",
            "Architecture": "arm64",
            "BootMode": "uefi",
            "EnaSupport": True,
            "TpmSupport": "v2.0",
            "ImdsSupport": "v2.0",
            "VirtualizationType": "hvm",
            "RootDeviceName": "/dev/xvda",
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "SnapshotId": {"Fn::GetAtt": [snapshot_logical_id, "SnapshotId"]},
                        "VolumeSize": 8,
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "Tags": [{"Key": "os", "Value": "nixos"}],
        },
    )
    assert consumer.resolve(ami.image_id) == {"Ref": logical_id(consumer, ami.resource)}


def test_image_from_a_snapshot_id_sends_only_what_is_set() -> None:
    consumer = stack()
    Image(consumer, "Ami", name="plain-image", snapshot="snap-0123456789abcdef0", architecture="x86_64")
    resources = Template.from_stack(consumer).find_resources("Custom::EbsImage")
    properties = next(iter(resources.values()))["Properties"]
    assert set(properties) == {
        "ServiceToken",
        "Name",
        "Architecture",
        "VirtualizationType",
        "RootDeviceName",
        "BlockDeviceMappings",
    }
    assert properties["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == "snap-0123456789abcdef0"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "x"}, "not a valid AMI name"),
        ({"architecture": "aarch64"}, "architecture 'aarch64'"),
        ({"boot_mode": "efi"}, "boot_mode 'efi'"),
        ({"boot_mode": "legacy-bios", "tpm_support": True}, "tpm_support needs UEFI"),
        ({"architecture": "x86_64", "tpm_support": True}, "tpm_support needs UEFI"),
    ],
)
def test_image_rejects_bad_options_at_synth_time(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "name": "nixos-test",
        "snapshot": "snap-0123456789abcdef0",
        "architecture": "arm64",
        **options,
    }
    with pytest.raises(ValueError, match=message):
        Image(stack(), "Ami", **arguments)  # type: ignore[arg-type]
