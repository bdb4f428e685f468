"""The payloads that travel from the handler through the state machine, in snake_case.

``SnapshotSpec`` is what the user asked for (parsed from CloudFormation's properties by
``handler.properties``); ``Request`` is the CloudFormation request it came with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SnapshotSpec:
    """What one ``Custom::EbsSnapshot`` asks for, validated."""

    image_bucket: str
    image_key: str
    volume_size_gib: int | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    encrypted: bool | None = None
    kms_key_arn: str | None = None

    def content_key(self) -> str:
        """Hash of everything that defines the snapshot's bytes, size, encryption and description.

        Two specs with the same key describe the same snapshot; only tags can differ, and tags
        are updated in place. EC2 cannot change a snapshot's description, so it counts here.
        """
        defining = {
            "image_bucket": self.image_bucket,
            "image_key": self.image_key,
            "volume_size_gib": self.volume_size_gib,
            "description": self.description,
            "encrypted": bool(self.encrypted or self.kms_key_arn),
            "kms_key_arn": self.kms_key_arn,
        }
        return hashlib.sha256(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotSpec:
        return cls(**{**data, "tags": dict(data.get("tags") or {})})


@dataclass(frozen=True)
class Request:
    """The CloudFormation request a run answers. ``response_url`` is a presigned URL: never log it."""

    request_type: str
    request_id: str
    stack_id: str
    logical_resource_id: str
    response_url: str
    # Epoch seconds by which the execution must have answered CloudFormation.
    deadline: float
    physical_resource_id: str | None = None

    @property
    def client_token(self) -> str:
        """StartSnapshot's ClientToken: stable for one request, so a retried Plan or a
        re-delivered event gets the same snapshot back. 64 hex characters (the documented limit)."""
        seed = f"{self.stack_id}|{self.logical_resource_id}|{self.request_id}"
        return hashlib.sha256(seed.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        return cls(**data)

    def log_keys(self) -> dict[str, str]:
        """What logs may carry to follow one request across functions (no ResponseURL)."""
        return {
            "cfn_request_id": self.request_id,
            "cfn_request_type": self.request_type,
            "logical_resource_id": self.logical_resource_id,
        }
