"""Tags the provider puts on every snapshot it creates, and what they are for.

``MANAGED_BY`` is the IAM condition key: the provider may delete or retag only snapshots that
carry it with the provider stack's name.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

PREFIX = "ebs-snapshot-provider:"
MANAGED_BY = PREFIX + "managed-by"  # provider stack name
REQUEST = PREFIX + "request"  # ClientToken of the run; Abort finds what to delete by it
SOURCE = PREFIX + "source"  # identity of the image, for later deduplication
CONTENT = PREFIX + "content"  # SnapshotSpec.content_key(): decides in-place Update vs replacement
RESOURCE = PREFIX + "resource"  # stack name/logical id#hash: which resource it belongs to
RESULT = PREFIX + "result"  # attributes, so an in-place Update can return them again
PROVIDER_TAG_COUNT = 6
MAX_TAGS = 50
MAX_USER_TAGS = MAX_TAGS - PROVIDER_TAG_COUNT
MAX_VALUE_LENGTH = 255

CDK_ASSET_KEY = re.compile(r"^(?P<hash>[0-9a-f]{64})(\.[A-Za-z0-9]+)*$")


def source_identity(bucket: str, key: str, etag: str) -> str:
    """``cdk-asset:<hash>`` when the key is a CDK file asset, else ``s3://bucket/key#etag``."""
    match = CDK_ASSET_KEY.match(posixpath.basename(key))
    if match:
        return f"cdk-asset:{match['hash']}"
    identity = f"s3://{bucket}/{key}#{etag.strip(chr(34))}"
    if len(identity) > MAX_VALUE_LENGTH:
        return "sha256:" + hashlib.sha256(identity.encode()).hexdigest()
    return identity


def resource_name(stack_id: str, logical_resource_id: str) -> str:
    """``stack-name/LogicalId#<hash>``: readable, and unique to this stack (the hash covers the
    stack ARN, whose UUID changes when a stack of the same name is made again)."""
    parts = stack_id.split("/")
    stack_name = parts[1] if len(parts) > 1 else stack_id
    unique = hashlib.sha256(f"{stack_id}|{logical_resource_id}".encode()).hexdigest()[:16]
    return f"{stack_name}/{logical_resource_id}"[: MAX_VALUE_LENGTH - 17] + "#" + unique


def user_tags(tags: list[dict[str, str]]) -> dict[str, str]:
    """The user's tags from an EC2 tag list, without the provider's own."""
    return {t["Key"]: t["Value"] for t in tags if not t["Key"].startswith(PREFIX)}


def tag_value(tags: list[dict[str, str]], key: str) -> str | None:
    return next((t["Value"] for t in tags if t["Key"] == key), None)
