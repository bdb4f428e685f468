"""``SnapshotAsset``: a local raw disk image becomes an EBS snapshot at deploy time.

CDK stages the file in the bootstrap bucket (``aws_s3_assets.Asset``); the provider's
``Custom::EbsSnapshot`` writes it into a snapshot through the EBS direct APIs.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CustomResource, Duration, Fn, Token
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

DEFAULT_PROVIDER_STACK_NAME = "ebs-snapshot-provider"
ASSET_HASH_TAG = "ebs-assets:asset-hash"
# The provider accepts 44 user tags on a snapshot; this construct adds one (the asset hash).
MAX_TAGS = 43
MAX_DESCRIPTION = 255
MIN_VOLUME_SIZE_GIB, MAX_VOLUME_SIZE_GIB = 1, 65536


def provider_service_token(provider_stack_name: str = DEFAULT_PROVIDER_STACK_NAME) -> str:
    """The provider's ServiceToken, imported from its stack's ``<stack name>-ServiceToken`` export.

    Parameters
    ----------
    provider_stack_name
        The stack name the provider was deployed with (``samconfig.toml``'s default:
        ``ebs-snapshot-provider``).
    """
    return Fn.import_value(f"{provider_stack_name}-ServiceToken")


class SnapshotAsset(Construct):
    """An EBS snapshot made from a local raw disk image when the stack is deployed.

    The file is staged like any CDK file asset (bootstrap bucket, key ``<asset hash>.raw``);
    a ``Custom::EbsSnapshot`` resource then writes it block by block into a completed snapshot.
    A changed file means a new asset hash, so a new snapshot; the old one is deleted after.

    Example::

        root = SnapshotAsset(self, "Root", path=image_path, description="NixOS root disk", tags={"os": "nixos"})

    Parameters
    ----------
    scope, id
        As for any construct.
    path
        The raw disk image (not qcow2, VHD or compressed; the provider refuses those).
    volume_size
        GiB, 1 to 65,536. Default: the smallest volume that holds the image.
    encrypted
        Encrypt the snapshot. Default: the account's EBS encryption default. Implied by ``kms_key``.
    kms_key
        The KMS key to encrypt with; implies ``encrypted``.
    description
        The snapshot's description, at most 255 characters. Changing it makes a new snapshot.
    tags
        Tags for the snapshot (at most 43; keys may not start with ``aws:`` or
        ``ebs-snapshot-provider:``). The asset hash is added as ``ebs-assets:asset-hash``.
    service_token
        The provider's ServiceToken. Default: ``provider_service_token()``, the export of the
        ``ebs-snapshot-provider`` stack.
    service_timeout
        CloudFormation's wait for the upload (at most one hour); the provider answers FAILED
        before it. Default: one hour.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        path: str,
        volume_size: int | None = None,
        encrypted: bool | None = None,
        kms_key: kms.IKey | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        service_token: str | None = None,
        service_timeout: Duration | None = None,
    ) -> None:
        super().__init__(scope, id)
        _check_volume_size(volume_size)
        if encrypted is False and kms_key is not None:
            raise ValueError("SnapshotAsset: encrypted=False contradicts kms_key; a KMS key implies encryption")
        if description is not None and not Token.is_unresolved(description) and len(description) > MAX_DESCRIPTION:
            raise ValueError(f"SnapshotAsset: description is {len(description)} characters; at most {MAX_DESCRIPTION}")
        if tags is not None and len(tags) > MAX_TAGS:
            raise ValueError(f"SnapshotAsset: {len(tags)} tags; at most {MAX_TAGS}")

        self.asset = s3_assets.Asset(self, "Image", path=path)
        """The staged file (bucket, key, hash)."""

        properties: dict[str, object] = {
            "ImageBucket": self.asset.s3_bucket_name,
            "ImageKey": self.asset.s3_object_key,
            "Tags": [{"Key": k, "Value": v} for k, v in {**(tags or {}), ASSET_HASH_TAG: self.asset.asset_hash}.items()],
        }
        if volume_size is not None:
            properties["VolumeSize"] = volume_size
        if encrypted is not None:
            properties["Encrypted"] = encrypted
        if kms_key is not None:
            properties["KmsKeyArn"] = kms_key.key_arn
        if description is not None:
            properties["Description"] = description
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=service_token or provider_service_token(),
            resource_type="Custom::EbsSnapshot",
            properties=properties,
            service_timeout=service_timeout,
        )
        """The ``Custom::EbsSnapshot`` resource."""

    @property
    def snapshot_id(self) -> str:
        """The snapshot id (``snap-...``), a token resolved at deploy time."""
        return self.resource.get_att_string("SnapshotId")

    @property
    def volume_size(self) -> float:
        """The snapshot's volume size in GiB, a token resolved at deploy time."""
        return Token.as_number(self.resource.get_att("VolumeSize"))

    @property
    def asset_hash(self) -> str:
        """The image file's hash, known at synth time: put it in names that must change with the image."""
        return self.asset.asset_hash


def _check_volume_size(volume_size: int | None) -> None:
    if volume_size is None or Token.is_unresolved(volume_size):
        return
    if isinstance(volume_size, bool) or not isinstance(volume_size, int):
        raise TypeError(f"SnapshotAsset: volume_size must be a whole number of GiB, not {volume_size!r}")
    if not MIN_VOLUME_SIZE_GIB <= volume_size <= MAX_VOLUME_SIZE_GIB:
        raise ValueError(
            f"SnapshotAsset: volume_size {volume_size} is out of range ({MIN_VOLUME_SIZE_GIB} to {MAX_VOLUME_SIZE_GIB} GiB)"
        )
