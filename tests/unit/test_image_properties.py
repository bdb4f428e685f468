"""Custom::EbsImage property parsing: CloudFormation sends strings; every error names the property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.image_properties import ImageSpec, parse_image_properties
from uploader.errors import InvalidProperty

SNAPSHOT = "snap-0123456789abcdef0"
BASE: dict[str, Any] = {
    "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:p",
    "Name": "nixos-25.11-arm64",
    "Architecture": "arm64",
    "RootDeviceName": "/dev/xvda",
    "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT}}],
}


def parse(**overrides: object) -> ImageSpec:
    return parse_image_properties({**BASE, **overrides})


def test_strings_from_cloudformation_become_registerimage_parameters() -> None:
    spec = parse(
        EnaSupport="true",
        BootMode="uefi",
        ImdsSupport="v2.0",
        TpmSupport="v2.0",
        VirtualizationType="hvm",
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"SnapshotId": SNAPSHOT, "VolumeSize": "8", "VolumeType": "gp3", "DeleteOnTermination": "false"},
            }
        ],
    )
    assert spec.register_parameters() == {
        "Name": "nixos-25.11-arm64",
        "Architecture": "arm64",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"SnapshotId": SNAPSHOT, "VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": False},
            }
        ],
        "BootMode": "uefi",
        "VirtualizationType": "hvm",
        "EnaSupport": True,
        "TpmSupport": "v2.0",
        "ImdsSupport": "v2.0",
    }
    assert spec.root_snapshot_id == SNAPSHOT


def test_tpm_without_a_boot_mode_is_accepted_on_arm64_whose_instances_boot_uefi() -> None:
    assert parse(TpmSupport="v2.0", Architecture="arm64").tpm_support == "v2.0"
    assert parse(TpmSupport="v2.0", Architecture="x86_64", BootMode="uefi-preferred").tpm_support == "v2.0"


def test_unset_optional_properties_are_not_sent_so_ec2_defaults_apply() -> None:
    assert set(parse().register_parameters()) == {"Name", "Architecture", "RootDeviceName", "BlockDeviceMappings"}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"Name": None}, "Name is required"),
        ({"Name": "ab"}, "Name"),
        ({"Name": "bad*name"}, "Name"),
        ({"Architecture": None}, "Architecture is required"),
        ({"Architecture": "aarch64"}, "Architecture"),
        ({"BootMode": "efi"}, "BootMode"),
        ({"VirtualizationType": "pv"}, "VirtualizationType"),
        ({"EnaSupport": "yes"}, "EnaSupport"),
        ({"SriovNetSupport": "complex"}, "SriovNetSupport"),
        ({"TpmSupport": "v1.2"}, "TpmSupport"),
        ({"TpmSupport": "v2.0", "BootMode": "legacy-bios"}, "TpmSupport v2.0 needs UEFI, but BootMode is legacy-bios"),
        ({"TpmSupport": "v2.0", "Architecture": "x86_64"}, r"BootMode is unset \(legacy BIOS on x86_64\)"),
        ({"ImdsSupport": "v1.0"}, "ImdsSupport"),
        ({"UefiData": "not base64!"}, "UefiData"),
        ({"Description": "x" * 256}, "Description"),
        ({"RootDeviceName": None}, "RootDeviceName is required"),
        ({"RootDeviceName": "/dev/sdb"}, "RootDeviceName /dev/sdb has no entry"),
        ({"RootDeviceName": "C:"}, "RootDeviceName"),
        ({"BlockDeviceMappings": None}, "BlockDeviceMappings is required"),
        ({"BlockDeviceMappings": []}, "BlockDeviceMappings"),
        ({"BlockDeviceMappings": [{"DeviceName": "/dev/xvda"}]}, r"BlockDeviceMappings\[0\].Ebs is required"),
        ({"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "vol-1"}}]}, r"\[0\].Ebs.SnapshotId"),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT, "VolumeSize": "8.5"}}]},
            r"\[0\].Ebs.VolumeSize",
        ),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT, "VolumeSize": "0"}}]},
            r"\[0\].Ebs.VolumeSize",
        ),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT, "VolumeType": "gp4"}}]},
            r"\[0\].Ebs.VolumeType",
        ),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT, "DeleteOnTermination": "1"}}]},
            r"\[0\].Ebs.DeleteOnTermination",
        ),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT, "Iops": "3000"}}]},
            r"\[0\].Ebs has unknown keys Iops",
        ),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT}, "NoDevice": ""}]},
            r"\[0\] has unknown keys NoDevice",
        ),
        (
            {
                "BlockDeviceMappings": [
                    {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT}},
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": "1"}},
                ]
            },
            r"BlockDeviceMappings\[1\].DeviceName /dev/xvda appears twice",
        ),
        ({"Tags": [{"Key": "ebs-snapshot-provider:managed-by", "Value": "me"}]}, r"Tags\[0\].Key"),
        ({"ImageBucket": "b"}, "Unknown property ImageBucket"),
    ],
)
def test_bad_property_is_rejected_naming_it(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidProperty, match=named):
        parse(**overrides)


def test_tags_and_description_keep_the_content_key_anything_else_changes_it() -> None:
    base = parse().content_key()
    assert parse(Tags=[{"Key": "team", "Value": "a"}], Description="new").content_key() == base
    assert parse(Name="nixos-25.11-arm64-2").content_key() != base
    assert parse(EnaSupport="true").content_key() != base
    assert parse(BootMode="uefi").content_key() != base
    other_snapshot = [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0fedcba9876543210"}}]
    assert parse(BlockDeviceMappings=other_snapshot).content_key() != base


def test_a_second_volume_may_be_empty_with_a_size() -> None:
    spec = parse(
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAPSHOT}},
            {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": "4"}},
        ]
    )
    assert spec.snapshot_ids == [SNAPSHOT]
    assert spec.register_parameters()["BlockDeviceMappings"][1] == {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 4}}


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(["arm64", "uefi", "true", "v2.0", "/dev/xvda", SNAPSHOT, "", "8", "gp3"]),
    st.text(max_size=40),
    st.lists(
        st.dictionaries(
            st.sampled_from(["DeviceName", "Ebs", "X"]),
            st.one_of(
                st.text(max_size=5),
                st.dictionaries(
                    st.sampled_from(["SnapshotId", "VolumeSize", "VolumeType", "DeleteOnTermination"]), st.text(max_size=8)
                ),
            ),
        ),
        max_size=3,
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*sorted(BASE), "EnaSupport", "BootMode", "Tags", "UefiData", "Other"]), values))
def test_parser_only_ever_raises_invalid_property(overrides: dict[str, object]) -> None:
    """Fuzz: whatever CloudFormation sends, the answer is a spec or a clear InvalidProperty, never a crash."""
    try:
        spec = parse_image_properties({**BASE, **overrides})
    except InvalidProperty as error:
        assert str(error)
    else:
        assert spec.root_snapshot_id in spec.snapshot_ids


def test_the_sample_event_for_sam_local_invoke_is_valid() -> None:
    import json
    from pathlib import Path

    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "create-image.json").read_text())
    assert event["ResourceType"] == "Custom::EbsImage"
    assert parse_image_properties(event["ResourceProperties"]).architecture == "arm64"
