"""Lambda entry points of the provider's front door.

``on_event`` is the ServiceToken's function: CloudFormation's Create/Update/Delete arrive here
and go through crhelper to ``lifecycle`` (Custom::EbsSnapshot) or ``image_lifecycle``
(Custom::EbsImage), chosen by the event's ResourceType. ``on_execution_result`` is the state machine's Respond
state: it answers CloudFormation for the Creates and Updates whose answer was deferred.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from crhelper import CfnResource

from handler import cfn_response, image_lifecycle, lifecycle
from uploader.spec import Request

logger = Logger(service="ebs-snapshot-provider")


class DeferringCfnResource(CfnResource):
    """crhelper, with two changes: a handler may defer the answer to the upload execution, and
    every answer goes through ``cfn_response`` (bounded retries, URL never logged)."""

    def __init__(self) -> None:
        # WARNING keeps crhelper from logging the event (it holds the presigned ResponseURL).
        # No sleep on Delete: this provider's stack is never deleted together with the resources it serves.
        super().__init__(json_logging=False, log_level="WARNING", boto_level="WARNING", sleep_on_delete=0)
        self.deferred = False

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        self.deferred = False
        super().__call__(event, context)

    # crhelper's stubs leave out its private methods, hence the ignores below.
    def _cfn_response(self, event: dict[str, Any]) -> None:
        if self.deferred:
            logger.info("Answer deferred to the upload execution")
            return
        super()._cfn_response(event)  # type: ignore[misc]

    def _send(self, status: str | None = None, reason: str = "", send_response: Any = None) -> None:
        super()._send(status, reason, send_response=lambda url, body, _verify: cfn_response.send(url, body))  # type: ignore[misc]


helper = DeferringCfnResource()


def _answer(answer: lifecycle.Answer) -> str:
    helper.Data.update(answer.data)
    helper.deferred = answer.deferred
    return answer.physical_resource_id


IMAGE_RESOURCE_TYPE = "Custom::EbsImage"


def _is_image(event: dict[str, Any]) -> bool:
    # Anything else is a snapshot, as before images existed (AWS::CloudFormation::CustomResource too).
    return event.get("ResourceType") == IMAGE_RESOURCE_TYPE


def _remaining_seconds(context: Any) -> float:
    return float(context.get_remaining_time_in_millis()) / 1000


@helper.create
def _on_create(event: dict[str, Any], context: Any) -> str:
    settings = lifecycle.Settings.from_environment()
    if _is_image(event):
        return _answer(image_lifecycle.create(event, settings, remaining_seconds=_remaining_seconds(context)))
    return _answer(lifecycle.create(event, settings))


@helper.update
def _on_update(event: dict[str, Any], context: Any) -> str:
    settings = lifecycle.Settings.from_environment()
    if _is_image(event):
        return _answer(image_lifecycle.update(event, settings, remaining_seconds=_remaining_seconds(context)))
    return _answer(lifecycle.update(event, settings))


@helper.delete
def _on_delete(event: dict[str, Any], _context: Any) -> str:
    settings = lifecycle.Settings.from_environment()
    if _is_image(event):
        return _answer(image_lifecycle.delete(event, settings))
    return _answer(lifecycle.delete(event, settings))


@logger.inject_lambda_context(clear_state=True)
def on_event(event: dict[str, Any], context: LambdaContext) -> None:
    """CloudFormation's entry point (the ServiceToken)."""
    logger.append_keys(
        cfn_request_id=event.get("RequestId"),
        cfn_request_type=event.get("RequestType"),
        logical_resource_id=event.get("LogicalResourceId"),
        physical_resource_id=event.get("PhysicalResourceId"),
    )
    logger.info("CloudFormation request", resource_type=event.get("ResourceType"))
    helper(event, context)


@logger.inject_lambda_context(clear_state=True)
def on_execution_result(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Respond state: ``{request, result}`` answers SUCCESS, ``{request, error}`` answers FAILED."""
    request = Request.from_dict(event["request"])
    logger.append_keys(**request.log_keys())
    if "result" in event:
        result = event["result"]
        body = cfn_response.response_body(
            status="SUCCESS",
            request_id=request.request_id,
            stack_id=request.stack_id,
            logical_resource_id=request.logical_resource_id,
            physical_resource_id=result["snapshot_id"],
            data=lifecycle.attributes(result),
        )
    else:
        body = cfn_response.response_body(
            status="FAILED",
            request_id=request.request_id,
            stack_id=request.stack_id,
            logical_resource_id=request.logical_resource_id,
            # A failed Update keeps the old id; a failed Create gets a marker Delete knows to skip.
            physical_resource_id=request.physical_resource_id or f"create-failed-{request.request_id}",
            reason=failure_reason(event.get("error", {}), event.get("cleanup")),
        )
    cfn_response.send(request.response_url, body)
    return {"status": body["Status"], "physical_resource_id": body["PhysicalResourceId"], "reason": body["Reason"]}


def failure_reason(error: dict[str, Any], cleanup: dict[str, Any] | None = None) -> str:
    """A short Reason: the failed range's own error when Abort found one (a Distributed Map
    reports only that a child failed), else the error name and the Lambda's message."""
    if cleanup and cleanup.get("reason"):
        return str(cleanup["reason"])
    name = str(error.get("Error", "Error"))
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
        message = str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause
    except ValueError:
        message = cause
    return f"{name}: {message}" if message else name
