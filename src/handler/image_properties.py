"""Parse and validate a Custom::EbsImage's ResourceProperties into an ``ImageSpec``.

The names follow EC2 RegisterImage's own. CloudFormation sends every value as a string
("true", "8"), so each property is parsed, never trusted for its truthiness; every error names
the property (``BlockDeviceMappings[0].Ebs.VolumeSize``) and what it accepts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from handler.properties import INTEGER, parse_bool, parse_tags
from uploader import geometry
from uploader.errors import InvalidProperty

KNOWN = frozenset(
    {
        "ServiceToken",
        "ServiceTimeout",
        "Name",
        "Description",
        "Architecture",
        "BootMode",
        "RootDeviceName",
        "VirtualizationType",
        "EnaSupport",
        "SriovNetSupport",
        "TpmSupport",
        "ImdsSupport",
        "UefiData",
        "BlockDeviceMappings",
        "Tags",
    }
)
MAPPING_KEYS = frozenset({"DeviceName", "Ebs"})
EBS_KEYS = frozenset({"SnapshotId", "VolumeSize", "VolumeType", "DeleteOnTermination"})
# EC2's enumerations (botocore's ec2 model: ArchitectureValues, BootModeValues, ...).
ARCHITECTURES = ("arm64", "x86_64", "i386", "arm64_mac", "x86_64_mac")
BOOT_MODES = ("uefi", "legacy-bios", "uefi-preferred")
VIRTUALIZATION_TYPES = ("hvm", "paravirtual")
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
SRIOV_NET_SUPPORT = ("simple",)
TPM_SUPPORT = ("v2.0",)
IMDS_SUPPORT = ("v2.0",)
# RegisterImage's documented Name constraint: 3-128 of letters, digits ( ) [ ] space . / - ' @ _
IMAGE_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
DEVICE_NAME = re.compile(r"^(/dev/)?[a-z][a-z0-9]{1,15}$")
SNAPSHOT_ID = re.compile(r"^snap-[0-9a-f]{8,17}$")
MAX_DESCRIPTION = 255
MAX_MAPPINGS = 64
# EC2 stores at most 64 KiB of UEFI variables; base64 makes that 4/3 as many characters.
MAX_UEFI_DATA_CHARS = 4 * -(-65536 // 3)


@dataclass(frozen=True)
class BlockDevice:
    """One entry of BlockDeviceMappings: an EBS volume, made from ``snapshot_id`` when set."""

    device_name: str
    snapshot_id: str | None = None
    volume_size_gib: int | None = None
    volume_type: str | None = None
    delete_on_termination: bool | None = None

    def to_request(self) -> dict[str, Any]:
        ebs: dict[str, Any] = {}
        if self.snapshot_id is not None:
            ebs["SnapshotId"] = self.snapshot_id
        if self.volume_size_gib is not None:
            ebs["VolumeSize"] = self.volume_size_gib
        if self.volume_type is not None:
            ebs["VolumeType"] = self.volume_type
        if self.delete_on_termination is not None:
            ebs["DeleteOnTermination"] = self.delete_on_termination
        return {"DeviceName": self.device_name, "Ebs": ebs}


@dataclass(frozen=True)
class ImageSpec:
    """What to register. Only ``description`` and ``tags`` can change without a new AMI."""

    name: str
    architecture: str
    root_device_name: str
    block_device_mappings: tuple[BlockDevice, ...]
    description: str | None = None
    boot_mode: str | None = None
    virtualization_type: str | None = None
    ena_support: bool | None = None
    sriov_net_support: str | None = None
    tpm_support: str | None = None
    imds_support: str | None = None
    uefi_data: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def snapshot_ids(self) -> list[str]:
        return [m.snapshot_id for m in self.block_device_mappings if m.snapshot_id is not None]

    @property
    def root_snapshot_id(self) -> str:
        root = next(m for m in self.block_device_mappings if m.device_name == self.root_device_name)
        assert root.snapshot_id is not None  # parse_image_properties checked it
        return root.snapshot_id

    def register_parameters(self) -> dict[str, Any]:
        """RegisterImage's parameters, tags aside; EC2's defaults apply to what is not set."""
        optional = {
            "Description": self.description,
            "BootMode": self.boot_mode,
            "VirtualizationType": self.virtualization_type,
            "EnaSupport": self.ena_support,
            "SriovNetSupport": self.sriov_net_support,
            "TpmSupport": self.tpm_support,
            "ImdsSupport": self.imds_support,
            "UefiData": self.uefi_data,
        }
        return {
            "Name": self.name,
            "Architecture": self.architecture,
            "RootDeviceName": self.root_device_name,
            "BlockDeviceMappings": [m.to_request() for m in self.block_device_mappings],
            **{key: value for key, value in optional.items() if value is not None},
        }

    def content_key(self) -> str:
        """Hash of everything RegisterImage fixes for good: equal keys mean an Update can be
        done in place (tags, description); different keys mean a new AMI."""
        fixed = {k: v for k, v in asdict(self).items() if k not in ("description", "tags")}
        return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:32]


def parse_image_properties(properties: dict[str, Any]) -> ImageSpec:
    """Validate ``ResourceProperties``; raises ``InvalidProperty`` naming the first bad one."""
    unknown = sorted(set(properties) - KNOWN)
    if unknown:
        raise InvalidProperty(
            f"Unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"Custom::EbsImage accepts {', '.join(sorted(KNOWN - {'ServiceToken', 'ServiceTimeout'}))}"
        )
    name = parse_name(properties.get("Name"))
    architecture = parse_choice("Architecture", properties.get("Architecture"), ARCHITECTURES, required=True)
    assert architecture is not None
    root_device_name = parse_device_name("RootDeviceName", properties.get("RootDeviceName"), required=True)
    assert root_device_name is not None
    mappings = parse_block_device_mappings(properties.get("BlockDeviceMappings"))
    root = next((m for m in mappings if m.device_name == root_device_name), None)
    if root is None or root.snapshot_id is None:
        raise InvalidProperty(
            f"RootDeviceName {root_device_name} has no entry with Ebs.SnapshotId in BlockDeviceMappings; "
            "the root volume must be made from a snapshot"
        )
    boot_mode = parse_choice("BootMode", properties.get("BootMode"), BOOT_MODES)
    tpm_support = parse_choice("TpmSupport", properties.get("TpmSupport"), TPM_SUPPORT)
    check_tpm_boots_uefi(tpm_support, boot_mode, architecture)
    return ImageSpec(
        name=name,
        architecture=architecture,
        root_device_name=root_device_name,
        block_device_mappings=mappings,
        description=parse_description(properties.get("Description")),
        boot_mode=boot_mode,
        virtualization_type=parse_choice("VirtualizationType", properties.get("VirtualizationType"), VIRTUALIZATION_TYPES),
        ena_support=parse_bool("EnaSupport", properties.get("EnaSupport")),
        sriov_net_support=parse_choice("SriovNetSupport", properties.get("SriovNetSupport"), SRIOV_NET_SUPPORT),
        tpm_support=tpm_support,
        imds_support=parse_choice("ImdsSupport", properties.get("ImdsSupport"), IMDS_SUPPORT),
        uefi_data=parse_uefi_data(properties.get("UefiData")),
        tags=parse_tags(properties.get("Tags")),
    )


def check_tpm_boots_uefi(tpm_support: str | None, boot_mode: str | None, architecture: str) -> None:
    """NitroTPM works with UEFI only. Without a BootMode an instance boots its type's default:
    UEFI on Graviton (arm64), legacy BIOS on Intel and AMD."""
    if tpm_support is None:
        return
    if boot_mode == "legacy-bios" or (boot_mode is None and architecture != "arm64"):
        raise InvalidProperty(
            f"TpmSupport {tpm_support} needs UEFI, but BootMode is {boot_mode or f'unset (legacy BIOS on {architecture})'}; "
            "set BootMode to uefi"
        )


def parse_name(value: Any) -> str:
    if value is None or value == "":
        raise InvalidProperty("Name is required: the AMI's name, unique in the account and region")
    if not isinstance(value, str) or not IMAGE_NAME.match(value):
        raise InvalidProperty(f"Name {value!r} is not a valid AMI name: 3 to 128 letters, digits, spaces and ( ) [ ] . / - ' @ _")
    return value


def parse_description(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidProperty("Description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidProperty(f"Description is {len(value)} characters; EC2 allows at most {MAX_DESCRIPTION}")
    return value


def parse_choice(name: str, value: Any, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidProperty(f"{name} is required; one of {', '.join(allowed)}")
        return None
    if not isinstance(value, str) or value not in allowed:
        raise InvalidProperty(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_device_name(name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidProperty(f"{name} is required, e.g. /dev/xvda")
        return None
    if not isinstance(value, str) or not DEVICE_NAME.match(value):
        raise InvalidProperty(f"{name} {value!r} is not a device name such as /dev/xvda or /dev/sda1")
    return value


def parse_uefi_data(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_UEFI_DATA_CHARS:
        raise InvalidProperty(f"UefiData must be a base64 string of at most {MAX_UEFI_DATA_CHARS} characters")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidProperty("UefiData is not valid base64 (python-uefivars' output, as RegisterImage takes it)") from None
    return value


def parse_block_device_mappings(value: Any) -> tuple[BlockDevice, ...]:
    if value is None or value == "":
        raise InvalidProperty("BlockDeviceMappings is required: at least the root device with Ebs.SnapshotId")
    if not isinstance(value, list) or not value:
        raise InvalidProperty("BlockDeviceMappings must be a non-empty list of {DeviceName, Ebs}")
    if len(value) > MAX_MAPPINGS:
        raise InvalidProperty(f"BlockDeviceMappings has {len(value)} entries; at most {MAX_MAPPINGS} are accepted")
    mappings: list[BlockDevice] = []
    for position, mapping in enumerate(value):
        where = f"BlockDeviceMappings[{position}]"
        if not isinstance(mapping, dict):
            raise InvalidProperty(f"{where} must be an object with DeviceName and Ebs")
        unknown = sorted(set(mapping) - MAPPING_KEYS)
        if unknown:
            raise InvalidProperty(f"{where} has unknown keys {', '.join(unknown)}; accepted: DeviceName, Ebs")
        device_name = parse_device_name(f"{where}.DeviceName", mapping.get("DeviceName"), required=True)
        assert device_name is not None
        if any(m.device_name == device_name for m in mappings):
            raise InvalidProperty(f"{where}.DeviceName {device_name} appears twice")
        mappings.append(parse_ebs(f"{where}.Ebs", device_name, mapping.get("Ebs")))
    return tuple(mappings)


def parse_ebs(where: str, device_name: str, ebs: Any) -> BlockDevice:
    if not isinstance(ebs, dict):
        raise InvalidProperty(f"{where} is required: an object with SnapshotId, VolumeSize, VolumeType, DeleteOnTermination")
    unknown = sorted(set(ebs) - EBS_KEYS)
    if unknown:
        raise InvalidProperty(f"{where} has unknown keys {', '.join(unknown)}; accepted: {', '.join(sorted(EBS_KEYS))}")
    snapshot_id = ebs.get("SnapshotId")
    if snapshot_id in (None, ""):
        snapshot_id = None
    elif not isinstance(snapshot_id, str) or not SNAPSHOT_ID.match(snapshot_id):
        raise InvalidProperty(f"{where}.SnapshotId {snapshot_id!r} is not a snapshot id (snap-...)")
    size = ebs.get("VolumeSize")
    volume_size: int | None = None
    if size not in (None, ""):
        if isinstance(size, bool) or not isinstance(size, (int, str)) or not INTEGER.match(str(size)):
            raise InvalidProperty(f"{where}.VolumeSize {size!r} is not a whole number of GiB")
        volume_size = int(str(size))
        if not geometry.MIN_VOLUME_SIZE_GIB <= volume_size <= geometry.MAX_VOLUME_SIZE_GIB:
            raise InvalidProperty(
                f"{where}.VolumeSize {volume_size} is out of range: EBS volumes are "
                f"{geometry.MIN_VOLUME_SIZE_GIB} to {geometry.MAX_VOLUME_SIZE_GIB} GiB"
            )
    if snapshot_id is None and volume_size is None:
        raise InvalidProperty(f"{where} needs SnapshotId or VolumeSize")
    return BlockDevice(
        device_name=device_name,
        snapshot_id=snapshot_id,
        volume_size_gib=volume_size,
        volume_type=parse_choice(f"{where}.VolumeType", ebs.get("VolumeType"), VOLUME_TYPES),
        delete_on_termination=parse_bool(f"{where}.DeleteOnTermination", ebs.get("DeleteOnTermination")),
    )
