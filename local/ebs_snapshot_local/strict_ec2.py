"""EC2 behaviour moto drops and the provider depends on: an AMI holds on to its snapshots.

moto's RegisterImage ignores BlockDeviceMappings, so DeleteSnapshot never says
``InvalidSnapshot.InUse``. Here RegisterImage records the snapshots an image maps, DeleteSnapshot
refuses them while the image is registered (with EC2's message, which names the AMI), and
DeregisterImage lets go of them.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidSnapshotInUse
from moto.ec2.models import EC2Backend
from moto.ec2.responses.amis import AmisResponse


class ImageLinks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshots_by_image: dict[str, set[str]] = {}

    def image_using(self, snapshot_id: str) -> str | None:
        with self.lock:
            return next((image for image, snaps in self.snapshots_by_image.items() if snapshot_id in snaps), None)


def install(links: ImageLinks) -> None:
    if getattr(AmisResponse, "_emulation_links_images", False):
        AmisResponse._emulation_links = links  # type: ignore[attr-defined]
        return
    AmisResponse._emulation_links = links  # type: ignore[attr-defined]
    register = AmisResponse.register_image
    delete_snapshot = EC2Backend.delete_snapshot
    deregister = EC2Backend.deregister_image

    def register_image(self: AmisResponse) -> ActionResult:
        result = register(self)
        image_id = str(result.result["ImageId"])  # type: ignore[index]
        params: dict[str, Any] = self._get_params()
        mapped = {
            str(m["Ebs"]["SnapshotId"]) for m in params.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")
        }
        with AmisResponse._emulation_links.lock:  # type: ignore[attr-defined]
            AmisResponse._emulation_links.snapshots_by_image[image_id] = mapped  # type: ignore[attr-defined]
        return result

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
    EC2Backend.delete_snapshot = guarded_delete_snapshot  # type: ignore[method-assign,assignment]
    EC2Backend.deregister_image = deregister_image  # type: ignore[method-assign,assignment]
    AmisResponse._emulation_links_images = True  # type: ignore[attr-defined]
