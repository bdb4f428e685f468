"""Step Functions limits measured on a real run, and secrets kept out of logs."""

from __future__ import annotations

import io
import logging
import os

from tests.integration.conftest import BLOCK, CloudFormation

STATE_LIMIT_BYTES = 262_144
HISTORY_LIMIT_EVENTS = 25_000


def test_largest_state_and_history_of_a_run_stay_far_below_the_limits(cloudformation: CloudFormation) -> None:
    image = cloudformation.image(os.urandom(300 * BLOCK))
    answer = cloudformation.create(cloudformation.stage(image))
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    emulation = cloudformation.emulation
    stepfunctions = emulation.client("stepfunctions")
    execution = next(
        e
        for e in emulation.executions()
        if answer["RequestId"] in stepfunctions.describe_execution(executionArn=e["executionArn"])["input"]
    )
    events = stepfunctions.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    sizes = [
        len(details.get("input") or details.get("output") or "")
        for event in events
        for key, details in event.items()
        if key.endswith("EventDetails") and isinstance(details, dict)
    ]
    # A 300-block image makes 5 ranges; the state carries the plan, never the ranges or digests.
    assert max(sizes) < 8_192, max(sizes)
    assert len(events) < 200
    print(f"largest state {max(sizes)} bytes of {STATE_LIMIT_BYTES}; {len(events)} history events of {HISTORY_LIMIT_EVENTS}")


def test_response_url_never_appears_in_logs(cloudformation: CloudFormation) -> None:
    # GIVEN every log record of the provider's functions, crhelper and boto included, at DEBUG
    provider = logging.getLogger("ebs-snapshot-provider")
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(provider.handlers[0].formatter if provider.handlers else logging.Formatter())
    root_level = logging.root.level
    for logger in (provider, logging.root):
        logger.addHandler(capture)
    logging.root.setLevel(logging.DEBUG)
    try:
        # WHEN a Create succeeds, another fails and a Delete runs
        staged = cloudformation.stage(cloudformation.image(os.urandom(2 * BLOCK)))
        created = cloudformation.create(staged)
        assert created["Status"] == "SUCCESS", created["Reason"]
        failed = cloudformation.create({**staged, "ImageKey": "missing.raw"})
        assert failed["Status"] == "FAILED"
        assert cloudformation.delete(created["PhysicalResourceId"], staged)["Status"] == "SUCCESS"
    finally:
        for logger in (provider, logging.root):
            logger.removeHandler(capture)
        logging.root.setLevel(root_level)
    logged = stream.getvalue()
    # THEN no ResponseURL (every one the emulation hands out has this path and signature) and no
    # worker's presigned GET URL (SigV4 query signature) is in them
    assert "cloudformation-custom-resource-response" not in logged
    assert "X-Amz-Signature" not in logged
    assert '"cfn_request_id"' in logged  # the logs are there, structured, and followable


def test_worker_run_twice_rewrites_the_same_blocks_harmlessly(cloudformation: CloudFormation) -> None:
    from uploader import finish, write

    image = cloudformation.image(os.urandom(70 * BLOCK))
    job = cloudformation.plan_directly(image)
    for index in range(job.range_count):
        write.write_range(job, index)
    write.write_range(job, 0)  # a Lambda or Step Functions retry of the first range
    assert finish.finish(job).blocks_written == 70
    cloudformation.wait_until_completed(job.snapshot_id)
    cloudformation.assert_snapshot_equals_image(job.snapshot_id, image)
    cloudformation.emulation.client("ec2").delete_snapshot(SnapshotId=job.snapshot_id)
