"""A bootable arm64 NixOS AMI from a raw disk image, in one ``cdk deploy``.

    EBS_ASSETS_IMAGE=result/nixos.raw python app.py     # synthesize into cdk.out (no CDK CLI needed)
    cdk deploy -c image=result/nixos.raw                 # deploy (the provider stack must exist)

The image path comes from the CDK context ``image`` or the environment variable
``EBS_ASSETS_IMAGE``. The provider stack (``sam deploy`` at the repository root) serves both
custom resources; its ServiceToken export is imported by default.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from ebs_assets import Image, SnapshotAsset


class NixosAmiStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, image_path: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        root = SnapshotAsset(self, "Root", path=image_path, description="NixOS root disk", tags={"os": "nixos"})
        ami = Image(
            self,
            "Ami",
            # AMI names are unique: a new image file gets a new name, so it can replace the old AMI.
            name=f"nixos-arm64-{root.asset_hash[:16]}",
            snapshot=root,
            architecture="arm64",
            boot_mode="uefi",
            ena_support=True,
            imds_support="v2.0",  # instances launched from it require IMDSv2
            description="NixOS, arm64, UEFI",
            tags={"os": "nixos"},
        )
        cdk.CfnOutput(self, "ImageId", value=ami.image_id)
        cdk.CfnOutput(self, "SnapshotId", value=root.snapshot_id)


def image_path(app: cdk.App) -> str:
    path = app.node.try_get_context("image") or os.environ.get("EBS_ASSETS_IMAGE")
    if not path:
        raise SystemExit(
            "No disk image given: set EBS_ASSETS_IMAGE=path/to/nixos.raw (python app.py) or pass -c image=path/to/nixos.raw (cdk)"
        )
    if not os.path.isfile(path):
        raise SystemExit(f"Disk image {path} does not exist or is not a file")
    return str(path)


def main() -> int:
    # Without the CDK CLI, App() would write to a temporary directory; the CLI sets CDK_OUTDIR.
    app = cdk.App(outdir=os.environ.get("CDK_OUTDIR") or "cdk.out")
    NixosAmiStack(app, "NixosAmi", image_path=image_path(app))
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
