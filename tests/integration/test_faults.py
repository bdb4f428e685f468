"""Injected EBS and Lambda faults: retried within budget, and the snapshot still equals the image."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ebs_snapshot_local.emulation import LocalEmulation
from ebs_snapshot_local.lambda_runtime import LambdaServiceFault
from ebs_snapshot_local.strict_ebs import FaultPlan
from tests.integration.conftest import BLOCK, CloudFormation


@pytest.fixture
def faults(emulation: LocalEmulation) -> Iterator[LocalEmulation]:
    yield emulation
    emulation.strict.faults = FaultPlan()
    emulation.runtime.before_invoke = None


def test_throttling_5xx_and_a_hanging_call_still_give_the_exact_image(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    # GIVEN EBS throttles 10% of block writes, fails 1% with 500, sends a burst of 20 503s,
    # and swallows one call whole
    faults.strict.faults = FaultPlan(
        throttle_share=0.10, server_error_share=0.01, burst_after_calls=60, burst_length=20, hanging_calls=1, seed=7
    )
    image = cloudformation.image(os.urandom(40 * BLOCK), 20 * BLOCK, os.urandom(100 * BLOCK) + b"tail")
    puts_before = faults.strict.calls.get("PutSnapshotBlock", 0)
    # WHEN the resource is created
    answer = cloudformation.create(cloudformation.stage(image))
    # THEN it succeeds, every fault kind was hit and retried, and the bytes are the image's
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    injected = faults.strict.faults.injected
    assert injected.get("throttled", 0) >= 5 and injected.get("hang") == 1 and injected.get("burst_503") == 20
    puts = faults.strict.calls["PutSnapshotBlock"] - puts_before
    assert puts >= 141 + sum(injected.values())
    assert answer["Data"]["BlocksWritten"] == 141
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)
    print(f"fault run: {puts} PutSnapshotBlock calls for 141 blocks; injected {injected}")


def test_snapshot_not_visible_for_a_while_after_start_is_waited_for(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    faults.strict.faults = FaultPlan(not_found_seconds=4)
    image = cloudformation.image(os.urandom(3 * BLOCK))
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert faults.strict.faults.injected.get("not_found", 0) >= 1
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_snapshot_that_ends_in_error_answers_failed_and_is_deleted(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    faults.strict.faults = FaultPlan(error_after_complete=True)
    answer = cloudformation.create(cloudformation.stage(cloudformation.image(os.urandom(2 * BLOCK))))
    assert answer["Status"] == "FAILED"
    assert "SnapshotFailed" in answer["Reason"] and "state error" in answer["Reason"]
    faults.wait_for_executions()
    assert [s for s in faults.snapshots() if s["State"] == "error"] == []


def test_lambda_throttling_of_workers_is_retried_and_the_upload_succeeds(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    throttled: list[int] = []

    def throttle_first_worker_calls(function_name: str, _event: Any) -> None:
        if function_name.endswith("WriteRangeFunction") and len(throttled) < 3:
            throttled.append(1)
            raise LambdaServiceFault("Lambda.TooManyRequestsException", "Rate Exceeded.")

    faults.runtime.before_invoke = throttle_first_worker_calls
    image = cloudformation.image(os.urandom(130 * BLOCK))
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert len(throttled) == 3
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)


def test_upload_that_cannot_finish_before_the_deadline_fails_early_and_leaves_nothing(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    import time

    # GIVEN EBS throttles 97% of writes and the resource allows CloudFormation 90 s
    faults.strict.faults = FaultPlan(throttle_share=0.97, seed=3)
    image = cloudformation.image(os.urandom(300 * BLOCK))
    staged = cloudformation.stage(image)
    started = time.monotonic()
    # WHEN it is created
    answer = cloudformation.create({**staged, "ServiceTimeout": "90"})
    elapsed = time.monotonic() - started
    # THEN FAILED arrives before CloudFormation's 90 s, naming the deadline, and no snapshot is left
    assert answer["Status"] == "FAILED"
    assert "DeadlineExceeded" in answer["Reason"] and "ServiceTimeout" in answer["Reason"]
    assert elapsed < 90
    faults.wait_for_executions(timeout_seconds=60)
    assert [s for s in faults.snapshots() if s["State"] != "completed"] == []


def test_snapshot_pending_past_the_deadline_answers_failed_and_is_deleted(
    cloudformation: CloudFormation, faults: LocalEmulation
) -> None:
    faults.strict.settings.completion_delay_seconds = 120
    try:
        answer = cloudformation.create(
            {**cloudformation.stage(cloudformation.image(os.urandom(2 * BLOCK))), "ServiceTimeout": "75"}
        )
    finally:
        faults.strict.settings.completion_delay_seconds = 0.3
    assert answer["Status"] == "FAILED"
    assert "DeadlineExceeded" in answer["Reason"] and "still pending" in answer["Reason"]
    faults.wait_for_executions()
    assert [s for s in faults.snapshots() if s["State"] != "completed"] == []


def test_workers_pace_themselves_under_the_per_snapshot_limit(cloudformation: CloudFormation, faults: LocalEmulation) -> None:
    # GIVEN EBS's per-snapshot limit scaled to 50 calls/s (well below what 8 workers x 24 threads
    # offer here: unpaced, ~40% of calls were throttled in this setting), 20 ms a call, and the
    # workers told the limit
    settings = faults.strict.settings
    settings.put_rate_per_snapshot, settings.put_latency_seconds = 50.0, 0.02
    os.environ["WRITE_RATE_PER_SNAPSHOT"] = "50"
    try:
        image = cloudformation.image(os.urandom(300 * BLOCK))
        calls_before = dict(faults.strict.calls)
        answer = cloudformation.create(cloudformation.stage(image))
    finally:
        settings.put_rate_per_snapshot, settings.put_latency_seconds = None, 0.0
        del os.environ["WRITE_RATE_PER_SNAPSHOT"]
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    puts = faults.strict.calls["PutSnapshotBlock"] - calls_before.get("PutSnapshotBlock", 0)
    throttled = faults.strict.calls.get("RateThrottled", 0) - calls_before.get("RateThrottled", 0)
    # THEN throttling stays a signal, not the norm, and no block is lost
    assert throttled / puts < 0.05
    cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)
