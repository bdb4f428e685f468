"""The CloudFormation answer: within 4,096 bytes, reason tail kept, failure reasons short."""

from __future__ import annotations

import json

from handler import cfn_response
from handler.app import failure_reason


def body(reason: str = "", data: dict[str, object] | None = None) -> dict[str, object]:
    return cfn_response.response_body(
        status="FAILED",
        request_id="r" * 36,
        stack_id="arn:aws:cloudformation:eu-west-1:123456789012:stack/s/" + "x" * 36,
        logical_resource_id="RootSnapshot",
        physical_resource_id="snap-0123456789abcdef0",
        reason=reason,
        data=data,
    )


def test_long_reason_is_cut_keeping_its_tail() -> None:
    answer = body("x" * 10_000 + "THE CAUSE")
    assert str(answer["Reason"]).endswith("THE CAUSE")
    assert len(json.dumps(answer).encode()) <= cfn_response.MAX_BODY_BYTES


def test_body_with_large_data_still_fits() -> None:
    answer = body("r" * 1000, {"Attr": "v" * 2500})
    assert len(json.dumps(answer).encode()) <= cfn_response.MAX_BODY_BYTES


def test_failure_reason_takes_the_lambda_error_message() -> None:
    error = {
        "Error": "ImageNotFound",
        "Cause": json.dumps({"errorType": "ImageNotFound", "errorMessage": "Image s3://b/k cannot be read"}),
    }
    assert failure_reason(error) == "ImageNotFound: Image s3://b/k cannot be read"


def test_failure_reason_of_a_plain_cause() -> None:
    assert failure_reason({"Error": "States.Timeout", "Cause": "timed out"}) == "States.Timeout: timed out"
