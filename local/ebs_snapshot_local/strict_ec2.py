"""EC2 image behaviour moto drops and the provider depends on.

moto's RegisterImage ignores BlockDeviceMappings, TagSpecifications and most parameters, and
makes a 15 GiB snapshot of its own for every image. Here RegisterImage refuses a mapped snapshot
that does not exist or is not ``completed`` and a Name already in use, records the request per
image (``ImageLinks.registered``) for tests to assert, shows the mappings, tags and parameters in
DescribeImages, and makes no snapshot of its own. DeleteSnapshot refuses a snapshot while an
image maps it (``InvalidSnapshot.InUse``, EC2's message names the AMI); DeregisterImage lets go
of it. ModifyImageAttribute sets Description (moto drops it).
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError, InvalidSnapshotInUse
from moto.ec2.models import EC2Backend
from moto.ec2.models.amis import Ami
from moto.ec2.responses.amis import AmisResponse

# RegisterImage parameters kept on moto's Ami, under the names its serializer looks for.
IMAGE_ATTRIBUTES = {
    "Architecture": "architecture",
    "BootMode": "boot_mode",
    "VirtualizationType": "virtualization_type",
    "RootDeviceName": "root_device_name",
    "EnaSupport": "ena_support",
    "SriovNetSupport": "sriov_net_support",
    "TpmSupport": "tpm_support",
    "ImdsSupport": "imds_support",
}


class ImageLinks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshots_by_image: dict[str, set[str]] = {}
        # RegisterImage's parameters per image id, as sent (what moto drops included).
        self.registered: dict[str, dict[str, Any]] = {}

    def image_using(self, snapshot_id: str) -> str | None:
        with self.lock:
            return next((image for image, snaps in self.snapshots_by_image.items() if snapshot_id in snaps), None)


def install(links: ImageLinks) -> None:
    if getattr(AmisResponse, "_emulation_links_images", False):
        AmisResponse._emulation_links = links  # type: ignore[attr-defined]
        return
    AmisResponse._emulation_links = links  # type: ignore[attr-defined]
    register = AmisResponse.register_image
    modify = AmisResponse.modify_image_attribute
    delete_snapshot = EC2Backend.delete_snapshot
    deregister = EC2Backend.deregister_image

    def register_image(self: AmisResponse) -> ActionResult:
        params: dict[str, Any] = self._get_params()
        mapped = {
            str(m["Ebs"]["SnapshotId"]) for m in params.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")
        }
        check_registrable(self.ec2_backend, params, mapped)
        result = register(self)
        image_id = str(result.result["ImageId"])  # type: ignore[index]
        record_image(self.ec2_backend, image_id, params, mapped)
        with AmisResponse._emulation_links.lock:  # type: ignore[attr-defined]
            AmisResponse._emulation_links.snapshots_by_image[image_id] = mapped  # type: ignore[attr-defined]
            AmisResponse._emulation_links.registered[image_id] = params  # type: ignore[attr-defined]
        return result

    def modify_image_attribute(self: AmisResponse) -> ActionResult:
        description = self._get_param("Description")
        if isinstance(description, dict) and "Value" in description:
            self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0].description = description["Value"]
            return EmptyResult()
        return modify(self)

    def guarded_delete_snapshot(self: EC2Backend, snapshot_id: str) -> Any:
        image = AmisResponse._emulation_links.image_using(snapshot_id)  # type: ignore[attr-defined]
        if image is not None:
            raise InvalidSnapshotInUse(snapshot_id, image)
        return delete_snapshot(self, snapshot_id)

    def deregister_image(self: EC2Backend, ami_id: str) -> None:
        deregister(self, ami_id)
        with AmisResponse._emulation_links.lock:  # type: ignore[attr-defined]
            AmisResponse._emulation_links.snapshots_by_image.pop(ami_id, None)  # type: ignore[attr-defined]

    AmisResponse.register_image = register_image  # type: ignore[method-assign]
    AmisResponse.modify_image_attribute = modify_image_attribute  # type: ignore[method-assign]
    plain_mappings: Any = Ami.__dict__["block_device_mappings"]
    # An image registered here shows the mappings it was registered with, not moto's own.
    Ami.block_device_mappings = property(  # type: ignore[assignment,method-assign]
        lambda ami: ami.__dict__.get("_emulation_mappings") or plain_mappings.fget(ami)
    )
    EC2Backend.delete_snapshot = guarded_delete_snapshot  # type: ignore[method-assign,assignment]
    EC2Backend.deregister_image = deregister_image  # type: ignore[method-assign,assignment]
    AmisResponse._emulation_links_images = True  # type: ignore[attr-defined]


def check_registrable(backend: EC2Backend, params: dict[str, Any], mapped: set[str]) -> None:
    """EC2's refusals that moto lacks: a mapped snapshot missing or not completed, a volume
    smaller than its snapshot, a Name in use."""
    for snapshot_id in sorted(mapped):
        try:
            snapshot = backend.get_snapshot(snapshot_id)
        except InvalidSnapshotIdError:
            raise EC2ClientError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.") from None
        if snapshot.status != "completed":
            raise EC2ClientError("IncorrectState", f"Snapshot '{snapshot_id}' is {snapshot.status}; it must be completed.")
    for mapping in params.get("BlockDeviceMappings", []):
        ebs = mapping.get("Ebs", {})
        if ebs.get("SnapshotId") and ebs.get("VolumeSize") is not None:
            snapshot_gib = int(backend.get_snapshot(str(ebs["SnapshotId"])).volume.size)
            if int(ebs["VolumeSize"]) < snapshot_gib:
                raise EC2ClientError(
                    "InvalidBlockDeviceMapping",
                    f"Volume of size {ebs['VolumeSize']}GB is smaller than snapshot '{ebs['SnapshotId']}', "
                    f"expect size >= {snapshot_gib}GB",
                )
    name = params.get("Name")
    holder = next((ami.id for ami in backend.amis.values() if ami.name == name), None)
    if holder is not None:
        raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {holder}")


def record_image(backend: EC2Backend, image_id: str, params: dict[str, Any], mapped: set[str]) -> None:
    """Make DescribeImages show what RegisterImage was given, and drop moto's own snapshot:
    EC2 makes none when the image is registered from snapshots."""
    ami = backend.amis[image_id]
    for parameter, attribute in IMAGE_ATTRIBUTES.items():
        if parameter in params:
            setattr(ami, attribute, params[parameter])
    if "EnaSupport" in params:
        ami.ena_support = str(params["EnaSupport"]).lower() == "true"  # type: ignore[attr-defined]
    if mapped:
        ami.root_device_type = "ebs"
        ami.__dict__["_emulation_mappings"] = [
            {"DeviceName": m["DeviceName"], "Ebs": {**m.get("Ebs", {})}} for m in params.get("BlockDeviceMappings", [])
        ]
        own = ami.ebs_snapshot
        backend.snapshots.pop(own.id, None)
    for specification in params.get("TagSpecifications", []):
        if specification.get("ResourceType") == "image":
            backend.create_tags([image_id], {t["Key"]: t["Value"] for t in specification.get("Tags", [])})
