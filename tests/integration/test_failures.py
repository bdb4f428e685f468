"""Failures end in a clear FAILED answer and leave no snapshot behind; late answers never lie."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from ebs_snapshot_local.emulation import LocalEmulation
from ebs_snapshot_local.strict_ebs import EbsError
from tests.integration.conftest import BLOCK, CloudFormation
from uploader import finish as finish_step
from uploader import write


@pytest.fixture
def faults(emulation: LocalEmulation) -> Iterator[LocalEmulation]:
    yield emulation
    emulation.strict.fault = None
    emulation.strict.settings.completion_delay_seconds = 0.3


def test_access_denied_at_one_block_fails_naming_the_block_and_deletes_the_snapshot(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    # GIVEN EBS refuses block 70 (range 1 of a 4-range image)
    def deny_block_70(operation: str, _snapshot: str | None, block: int | None) -> None:
        if operation == "PutSnapshotBlock" and block == 70:
            raise EbsError(
                "AccessDeniedException", "User is not authorized to perform ebs:PutSnapshotBlock", "UNAUTHORIZED_ACCOUNT", 403
            )

    faults.strict.fault = deny_block_70
    image = cloudformation.image(os.urandom(200 * BLOCK))
    # WHEN the resource is created
    answer = cloudformation.create(cloudformation.stage(image))
    # THEN FAILED names the block and the error, and the snapshot is gone (the fixture checks pending ones)
    assert answer["Status"] == "FAILED"
    assert "put block 70 of snap-" in answer["Reason"] and "AccessDeniedException" in answer["Reason"]
    assert answer["PhysicalResourceId"].startswith("create-failed-")
    faults.wait_for_executions()
    resource_snapshots = [
        s for s in faults.snapshots() if any(t["Value"].startswith("consumer/" + cloudformation.logical_id) for t in s["Tags"])
    ]
    assert resource_snapshots == []


def test_delete_while_create_still_runs_stops_it_and_no_success_follows(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    # GIVEN a Create whose snapshot takes long to complete (CloudFormation gave up on it)
    faults.strict.settings.completion_delay_seconds = 30
    staged = cloudformation.stage(cloudformation.image(os.urandom(2 * BLOCK)))
    create = cloudformation.event("Create", staged)
    request_id = faults.deliver(create)
    deadline = time.monotonic() + 30
    while not [s for s in faults.snapshots() if s["State"] == "pending"] and time.monotonic() < deadline:
        time.sleep(0.2)
    # WHEN CloudFormation deletes the resource it never got an id for
    answer = cloudformation.delete("consumer-" + cloudformation.logical_id + "-PLACEHOLDER", staged)
    # THEN Delete succeeds, the upload is stopped, its snapshot deleted, and the Create never answers
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    faults.wait_for_executions()
    time.sleep(1)
    assert faults.endpoint.answers(request_id) == []
    assert [s for s in faults.snapshots() if s["State"] == "pending"] == []


def test_finish_run_twice_does_not_fail_a_good_snapshot(emulation: LocalEmulation, cloudformation: CloudFormation) -> None:
    # GIVEN a planned and written upload, driven step by step
    job = cloudformation.plan_directly(cloudformation.image(os.urandom(3 * BLOCK)))
    for index in range(job.range_count):
        write.write_range(job, index)
    # WHEN Finish runs, and runs again (a Lambda retry) while EC2 still says pending
    first = finish_step.finish(job)
    second = finish_step.finish(job)
    # THEN both report the same result and the snapshot completes
    assert (first.blocks_written, first.checksum) == (second.blocks_written, second.checksum) == (3, first.checksum)
    cloudformation.wait_until_completed(job.snapshot_id)
    emulation.client("ec2").delete_snapshot(SnapshotId=job.snapshot_id)


def test_rollback_update_returns_to_the_original_snapshot_without_uploading_again(cloudformation: CloudFormation) -> None:
    original_image = cloudformation.image(os.urandom(2 * BLOCK))
    first = {**cloudformation.stage(original_image), "Description": "v1"}
    created = cloudformation.create(first)
    assert created["Status"] == "SUCCESS", created["Reason"]
    original = created["PhysicalResourceId"]
    second = {**first, "Description": "v2"}
    updated = cloudformation.update(original, first, second)
    assert updated["Status"] == "SUCCESS" and updated["PhysicalResourceId"] != original
    puts_before = cloudformation.emulation.strict.calls.get("PutSnapshotBlock", 0)
    # WHEN the stack rolls back: Update of the new id back to the old properties
    rolled_back = cloudformation.update(updated["PhysicalResourceId"], second, first)
    # THEN the original snapshot is the resource again, and nothing was uploaded
    assert rolled_back["Status"] == "SUCCESS", rolled_back["Reason"]
    assert rolled_back["PhysicalResourceId"] == original
    assert cloudformation.emulation.strict.calls.get("PutSnapshotBlock", 0) == puts_before
    assert cloudformation.delete(updated["PhysicalResourceId"], second)["Status"] == "SUCCESS"
    assert cloudformation.delete(original, first)["Status"] == "SUCCESS"


def test_service_timeout_out_of_range_is_rejected(cloudformation: CloudFormation) -> None:
    staged = cloudformation.stage(cloudformation.image(os.urandom(BLOCK)))
    answer = cloudformation.create({**staged, "ServiceTimeout": "7200"})
    assert answer["Status"] == "FAILED" and "ServiceTimeout" in answer["Reason"]


def test_compressed_image_fails_naming_the_format_before_any_snapshot_exists(cloudformation: CloudFormation) -> None:
    import gzip

    starts = cloudformation.emulation.strict.calls.get("StartSnapshot", 0)
    compressed = cloudformation.image(gzip.compress(os.urandom(BLOCK) + bytes(BLOCK)))
    answer = cloudformation.create(cloudformation.stage(compressed))
    assert answer["Status"] == "FAILED"
    assert "gzip-compressed" in answer["Reason"] and "gunzip" in answer["Reason"]
    assert cloudformation.emulation.strict.calls.get("StartSnapshot", 0) == starts


def test_fixed_vhd_is_uploaded_without_its_footer(cloudformation: CloudFormation) -> None:
    from tests.unit.test_image_format import vhd_footer

    raw = os.urandom(3 * BLOCK + 1000)
    answer = cloudformation.create(cloudformation.stage(cloudformation.image(raw + vhd_footer(len(raw), 2))))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["Data"]["ImageSize"] == len(raw)
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], cloudformation.image(raw))
