"""CDK constructs for ebs-snapshot-provider: a local raw disk image becomes an EBS snapshot
(``SnapshotAsset``, ``Custom::EbsSnapshot``) and an AMI (``Image``, ``Custom::EbsImage``).

Both talk to the provider stack deployed with SAM; by default they import its
``ebs-snapshot-provider-ServiceToken`` export (``provider_service_token``).
"""

from __future__ import annotations

from ebs_assets.image import Architecture, BootMode, Image, VirtualizationType, VolumeType
from ebs_assets.snapshot_asset import DEFAULT_PROVIDER_STACK_NAME, SnapshotAsset, provider_service_token

__all__ = [
    "DEFAULT_PROVIDER_STACK_NAME",
    "Architecture",
    "BootMode",
    "Image",
    "SnapshotAsset",
    "VirtualizationType",
    "VolumeType",
    "provider_service_token",
]
