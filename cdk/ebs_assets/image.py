"""``Image``: an AMI registered from a snapshot (``Custom::EbsImage``, served by the same provider).

CloudFormation has no ``AWS::EC2::Image``; this resource's properties follow RegisterImage's
names, as its ``Source.Register`` proposal does, so moving over later is a rename.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

from aws_cdk import CustomResource, Token
from constructs import Construct

from ebs_assets.snapshot_asset import SnapshotAsset, provider_service_token

Architecture = Literal["arm64", "x86_64", "i386", "arm64_mac", "x86_64_mac"]
BootMode = Literal["uefi", "legacy-bios", "uefi-preferred"]
VolumeType = Literal["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"]
VirtualizationType = Literal["hvm", "paravirtual"]
# RegisterImage's Name constraint: 3-128 of letters, digits, spaces and ( ) [ ] . / - ' @ _
IMAGE_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
# The provider accepts 44 user tags (EC2 allows 50 and the provider uses 3 on images).
MAX_TAGS = 44


class Image(Construct):
    """An AMI registered from an EBS snapshot when the stack is deployed.

    Tags and ``description`` change in place; any other change registers a new AMI (new id) and
    CloudFormation deregisters the old one. AMI names are unique per account and region, so
    ``name`` must change too when the image is replaced: derive it from what replaces it, e.g.
    ``SnapshotAsset.asset_hash``. Deleting the stack deregisters the AMI; its snapshot is deleted
    by its own resource.

    Example::

        ami = Image(
            self,
            "Ami",
            name=f"nixos-arm64-{root.asset_hash[:16]}",
            snapshot=root,
            architecture="arm64",
            boot_mode="uefi",
            ena_support=True,
        )

    Parameters
    ----------
    scope, id
        As for any construct.
    name
        The AMI name: 3 to 128 letters, digits, spaces and ``( ) [ ] . / - ' @ _``.
    snapshot
        The root volume's snapshot: a ``SnapshotAsset`` (the image then depends on it) or a
        snapshot id.
    architecture
        ``arm64``, ``x86_64``, ... (required: EC2's default, i386, is rarely meant).
    boot_mode
        ``uefi``, ``legacy-bios`` or ``uefi-preferred``. Default: EC2's (per instance type).
    description
        At most 255 characters; changed in place.
    root_device_name
        The root device. Default ``/dev/xvda``.
    virtualization_type
        Default ``hvm`` (what Nitro instances need; EC2's own default is ``paravirtual``).
    ena_support
        Enhanced networking with ENA; Graviton and most current instance types need it.
    sriov_net_support
        ``True`` sends ``SriovNetSupport: simple`` (Intel 82599 VF networking).
    tpm_support
        ``True`` sends ``TpmSupport: v2.0`` (NitroTPM; needs UEFI: ``boot_mode="uefi"``, or no
        ``boot_mode`` on arm64, whose instances boot UEFI).
    imds_support
        ``"v2.0"``: instances launched from the AMI require IMDSv2.
    uefi_data
        Base64 UEFI variable store (python-uefivars' output).
    volume_size
        Root volume GiB. Default: the snapshot's size.
    volume_type
        Root volume type. Default ``gp3``.
    delete_on_termination
        Delete the root volume with the instance. Default ``True``.
    tags
        Tags for the AMI (at most 44; keys may not start with ``aws:`` or ``ebs-snapshot-provider:``).
    service_token
        The provider's ServiceToken. Default: the ``ebs-snapshot-provider`` stack's export.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        snapshot: SnapshotAsset | str,
        architecture: Architecture,
        boot_mode: BootMode | None = None,
        description: str | None = None,
        root_device_name: str = "/dev/xvda",
        virtualization_type: VirtualizationType = "hvm",
        ena_support: bool | None = None,
        sriov_net_support: bool | None = None,
        tpm_support: bool | None = None,
        imds_support: Literal["v2.0"] | None = None,
        uefi_data: str | None = None,
        volume_size: int | None = None,
        volume_type: VolumeType = "gp3",
        delete_on_termination: bool = True,
        tags: Mapping[str, str] | None = None,
        service_token: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not Token.is_unresolved(name) and not IMAGE_NAME.match(name):
            raise ValueError(f"Image: name {name!r} is not a valid AMI name: 3 to 128 letters, digits, spaces and ()[]./-'@_")
        _check_choice("architecture", architecture, Architecture)
        _check_choice("boot_mode", boot_mode, BootMode)
        _check_choice("volume_type", volume_type, VolumeType)
        _check_choice("virtualization_type", virtualization_type, VirtualizationType)
        # NitroTPM needs UEFI; with no boot mode an instance boots its type's default (UEFI on Graviton only).
        if tpm_support and (boot_mode == "legacy-bios" or (boot_mode is None and architecture != "arm64")):
            raise ValueError("Image: tpm_support needs UEFI: boot_mode='uefi' (or no boot_mode on arm64)")
        if tags is not None and len(tags) > MAX_TAGS:
            raise ValueError(f"Image: {len(tags)} tags; at most {MAX_TAGS}")

        snapshot_id = snapshot.snapshot_id if isinstance(snapshot, SnapshotAsset) else snapshot
        ebs: dict[str, object] = {
            "SnapshotId": snapshot_id,
            "VolumeType": volume_type,
            "DeleteOnTermination": delete_on_termination,
        }
        if volume_size is not None:
            ebs["VolumeSize"] = volume_size
        optional: dict[str, object | None] = {
            "Description": description,
            "BootMode": boot_mode,
            "EnaSupport": ena_support,
            "SriovNetSupport": "simple" if sriov_net_support else None,
            "TpmSupport": "v2.0" if tpm_support else None,
            "ImdsSupport": imds_support,
            "UefiData": uefi_data,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()] if tags else None,
        }
        properties: dict[str, object] = {
            "Name": name,
            "Architecture": architecture,
            "VirtualizationType": virtualization_type,
            "RootDeviceName": root_device_name,
            "BlockDeviceMappings": [{"DeviceName": root_device_name, "Ebs": ebs}],
            **{key: value for key, value in optional.items() if value is not None},
        }
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=service_token or provider_service_token(),
            resource_type="Custom::EbsImage",
            properties=properties,
        )
        """The ``Custom::EbsImage`` resource."""

    @property
    def image_id(self) -> str:
        """The AMI id (``ami-...``), a token resolved at deploy time."""
        return self.resource.ref

    @property
    def root_snapshot_id(self) -> str:
        """The root volume's snapshot id, a token resolved at deploy time."""
        return self.resource.get_att_string("RootSnapshotId")


def _check_choice(name: str, value: object, allowed: object) -> None:
    # The Literal types check typed callers; this checks the others at synth time.
    choices = get_args(allowed)
    if value is not None and value not in choices:
        raise ValueError(f"Image: {name} {value!r} is not one of {', '.join(map(str, choices))}")
