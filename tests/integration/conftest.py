"""One local emulation for the whole session, and a CloudFormation stand-in per test.

Every test ends by checking the invariant the provider promises: no snapshot it created is
left pending or in error, and no upload execution is still running.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ebs_snapshot_local.emulation import LocalEmulation
from ebs_snapshot_local.readback import compare_snapshot_with_image
from ebs_snapshot_local.strict_ebs import EmulationSettings

BLOCK = 524_288
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/consumer/5b9c1e20-8f3a-11ef-9d7b-0a1b2c3d4e5f"


@pytest.fixture(scope="session")
def emulation() -> Iterator[LocalEmulation]:
    with LocalEmulation(settings=EmulationSettings(completion_delay_seconds=0.3)) as running:
        yield running


class CloudFormation:
    """Sends Create/Update/Delete the way CloudFormation does and returns its answers."""

    def __init__(self, emulation: LocalEmulation, tmp_path: Path) -> None:
        self.emulation = emulation
        self.tmp_path = tmp_path
        self.logical_id = "Root" + uuid.uuid4().hex[:8]

    def image(self, *parts: bytes | int) -> Path:
        """An image from parts: bytes as given, an int as that many zero bytes."""
        path = self.tmp_path / f"{uuid.uuid4().hex}.raw"
        with path.open("wb") as handle:
            for part in parts:
                if isinstance(part, int):
                    handle.seek(part, os.SEEK_CUR)
                else:
                    handle.write(part)
            handle.truncate()
        return path

    def stage(self, image: Path) -> dict[str, str]:
        bucket, key = self.emulation.stage_image(image)
        return {"ImageBucket": bucket, "ImageKey": key}

    def event(self, request_type: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "RequestType": request_type,
            "RequestId": str(uuid.uuid4()),
            "StackId": STACK_ID,
            "LogicalResourceId": self.logical_id,
            "ResourceType": "Custom::EbsSnapshot",
            "ResourceProperties": dict(properties),
            **extra,
        }

    def create(self, properties: dict[str, Any]) -> dict[str, Any]:
        return self.emulation.send(self.event("Create", properties), timeout_seconds=300)

    def update(self, physical_id: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        event = self.event("Update", new, PhysicalResourceId=physical_id, OldResourceProperties=dict(old))
        return self.emulation.send(event, timeout_seconds=300)

    def delete(self, physical_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        return self.emulation.send(self.event("Delete", properties, PhysicalResourceId=physical_id), timeout_seconds=120)

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        found = [s for s in self.emulation.snapshots() if s["SnapshotId"] == snapshot_id]
        return found[0] if found else None

    def plan_directly(self, image: Path) -> Any:
        """Stage ``image`` and run the Plan step by hand (no execution), for step-by-step tests."""
        from uploader import plan
        from uploader.spec import Request, SnapshotSpec

        assert self.emulation.deployment is not None
        staged = self.stage(image)
        name = "direct-" + self.logical_id
        request = Request("Create", name, STACK_ID, self.logical_id, "http://127.0.0.1:9/unused", deadline=9e9)
        return plan.run(
            SnapshotSpec(staged["ImageBucket"], staged["ImageKey"]),
            request,
            execution_name=name,
            work_bucket=self.emulation.deployment.work_bucket,
            provider_name=self.emulation.stack_name,
            max_workers=4,
        )

    def wait_until_completed(self, snapshot_id: str, timeout_seconds: float = 10) -> None:
        wait_until_completed(self.emulation, snapshot_id, timeout_seconds)

    def assert_snapshot_equals_image(self, snapshot_id: str, image: Path) -> None:
        snapshot = self.snapshot(snapshot_id)
        encrypted = bool(snapshot and snapshot.get("Encrypted"))
        comparison = compare_snapshot_with_image(self.emulation.client("ebs"), snapshot_id, image, encrypted=encrypted)
        assert comparison.mismatched == [], f"blocks differ: {comparison.mismatched[:10]}"
        assert comparison.blocks_compared >= -(-image.stat().st_size // BLOCK)


@pytest.fixture
def cloudformation(emulation: LocalEmulation, tmp_path: Path) -> Iterator[CloudFormation]:
    yield CloudFormation(emulation, tmp_path)
    emulation.wait_for_executions(timeout_seconds=120)
    unfinished = [(s["SnapshotId"], s["State"]) for s in emulation.snapshots() if s["State"] != "completed"]
    assert unfinished == [], f"snapshots left pending or in error: {unfinished}"


def wait_until_completed(emulation: LocalEmulation, snapshot_id: str, timeout_seconds: float = 10) -> None:
    """Until EC2 reports the snapshot ``completed`` (the strict EBS completes it after a delay)."""
    ec2 = emulation.client("ec2")
    deadline = time.monotonic() + timeout_seconds
    while ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] != "completed":
        assert time.monotonic() < deadline, f"{snapshot_id} not completed in {timeout_seconds} s"
        time.sleep(0.05)
