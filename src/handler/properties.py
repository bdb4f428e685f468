"""Parse and validate a Custom::EbsSnapshot's ResourceProperties into a ``SnapshotSpec``.

CloudFormation sends every value as a string ("8", "false"), so each property is parsed, never
trusted for its truthiness. Every error names the property and what it accepts.
"""

from __future__ import annotations

import re
from typing import Any

from uploader import geometry, tags
from uploader.errors import InvalidProperty
from uploader.spec import SnapshotSpec

KNOWN = frozenset(
    {"ServiceToken", "ServiceTimeout", "ImageBucket", "ImageKey", "VolumeSize", "Description", "Tags", "Encrypted", "KmsKeyArn"}
)
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
INTEGER = re.compile(r"^\s*\+?\d+\s*$")
MAX_DESCRIPTION = 255
MAX_TAG_KEY = 127
MAX_SERVICE_TIMEOUT = 3600


def parse_properties(properties: dict[str, Any]) -> SnapshotSpec:
    """Validate ``ResourceProperties``; raises ``InvalidProperty`` naming the first bad one."""
    unknown = sorted(set(properties) - KNOWN)
    if unknown:
        raise InvalidProperty(
            f"Unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"Custom::EbsSnapshot accepts {', '.join(sorted(KNOWN - {'ServiceToken', 'ServiceTimeout'}))}"
        )
    kms_key_arn = parse_kms_key_arn(properties.get("KmsKeyArn"))
    encrypted = parse_bool("Encrypted", properties.get("Encrypted"))
    if encrypted is False and kms_key_arn:
        raise InvalidProperty("Encrypted is false but KmsKeyArn is set; a KMS key implies encryption, so drop one of them")
    return SnapshotSpec(
        image_bucket=parse_bucket(properties.get("ImageBucket")),
        image_key=parse_key(properties.get("ImageKey")),
        volume_size_gib=parse_volume_size(properties.get("VolumeSize")),
        description=parse_description(properties.get("Description")),
        tags=parse_tags(properties.get("Tags")),
        encrypted=encrypted,
        kms_key_arn=kms_key_arn,
    )


def parse_service_timeout(properties: dict[str, Any]) -> int | None:
    """CloudFormation's ServiceTimeout for this resource, in seconds (1 to 3,600), if set."""
    value = properties.get("ServiceTimeout")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not INTEGER.match(str(value)) or not 1 <= int(str(value)) <= MAX_SERVICE_TIMEOUT:
        raise InvalidProperty(f"ServiceTimeout {value!r} must be a whole number of seconds from 1 to {MAX_SERVICE_TIMEOUT}")
    return int(str(value))


def parse_bucket(value: Any) -> str:
    if value is None or value == "":
        raise InvalidProperty("ImageBucket is required: the S3 bucket holding the raw image")
    if not isinstance(value, str) or not BUCKET_NAME.match(value):
        raise InvalidProperty(f"ImageBucket {value!r} is not a valid S3 bucket name")
    return value


def parse_key(value: Any) -> str:
    if value is None or value == "":
        raise InvalidProperty("ImageKey is required: the S3 key of the raw image")
    if not isinstance(value, str) or len(value.encode()) > 1024:
        raise InvalidProperty("ImageKey must be an S3 key of at most 1,024 bytes")
    return value


def parse_volume_size(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not INTEGER.match(str(value)):
        raise InvalidProperty(f"VolumeSize {value!r} is not a whole number of GiB")
    size = int(str(value))
    if not geometry.MIN_VOLUME_SIZE_GIB <= size <= geometry.MAX_VOLUME_SIZE_GIB:
        raise InvalidProperty(
            f"VolumeSize {size} is out of range: EBS volumes are "
            f"{geometry.MIN_VOLUME_SIZE_GIB} to {geometry.MAX_VOLUME_SIZE_GIB} GiB"
        )
    return size


def parse_bool(name: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise InvalidProperty(f"{name} {value!r} is not a boolean; use true or false")


def parse_description(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidProperty("Description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidProperty(f"Description is {len(value)} characters; EBS allows at most {MAX_DESCRIPTION}")
    return value


def parse_kms_key_arn(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not KMS_KEY_ARN.match(value):
        raise InvalidProperty(
            f"KmsKeyArn {value!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); "
            "aliases and bare key ids are not accepted"
        )
    return value


def parse_tags(value: Any) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, list):
        raise InvalidProperty("Tags must be a list of {Key, Value}")
    if len(value) > tags.MAX_USER_TAGS:
        raise InvalidProperty(
            f"Tags has {len(value)} tags; at most {tags.MAX_USER_TAGS} are allowed "
            f"(EBS allows {tags.MAX_TAGS} and the provider uses {tags.PROVIDER_TAG_COUNT})"
        )
    parsed: dict[str, str] = {}
    for position, tag in enumerate(value):
        if not isinstance(tag, dict) or set(tag) != {"Key", "Value"}:
            raise InvalidProperty(f"Tags[{position}] must have exactly Key and Value")
        key, text = tag["Key"], tag["Value"]
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise InvalidProperty(f"Tags[{position}].Key must be 1 to {MAX_TAG_KEY} characters")
        if key.lower().startswith("aws:") or key.startswith(tags.PREFIX):
            raise InvalidProperty(f"Tags[{position}].Key {key!r} uses a reserved prefix (aws: or {tags.PREFIX})")
        if not isinstance(text, str) or len(text) > tags.MAX_VALUE_LENGTH:
            raise InvalidProperty(f"Tags[{position}].Value must be a string of at most {tags.MAX_VALUE_LENGTH} characters")
        if key in parsed:
            raise InvalidProperty(f"Tags[{position}].Key {key!r} appears twice")
        parsed[key] = text
    return parsed
