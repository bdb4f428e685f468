"""The only Step Functions calls: start an upload execution, stop one.

The execution name is derived from the request's ClientToken (itself from the CloudFormation
RequestId), so an event delivered twice starts one execution, and Delete can find the execution
of a snapshot from its request tag.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from uploader import aws


def execution_name(client_token: str) -> str:
    """A valid, unique-per-request execution name (at most 80 characters)."""
    return "upload-" + client_token[:40]


def execution_arn(state_machine_arn: str, client_token: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{execution_name(client_token)}"


def start_upload(state_machine_arn: str, client_token: str, execution_input: dict[str, Any]) -> str:
    """Start the upload execution for one request; returns its ARN. Idempotent per request."""
    name = execution_name(client_token)

    def attempt() -> str:
        try:
            response = aws.client("stepfunctions").start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input)
            )
        except ClientError as error:
            if aws.error_code(error) != "ExecutionAlreadyExists":
                raise
            # The same request delivered again: the first execution is already answering it.
            return execution_arn(state_machine_arn, client_token)
        return str(response["executionArn"])

    return aws.call(f"start upload execution {name}", attempt)


def stop_upload(execution_arn: str, cause: str) -> None:
    """Stop an execution if it is still running; stopping a finished one is a no-op."""

    def attempt() -> None:
        try:
            aws.client("stepfunctions").stop_execution(executionArn=execution_arn, cause=cause[:32768])
        except ClientError as error:
            if aws.error_code(error) not in ("ExecutionDoesNotExist",):
                raise

    aws.call(f"stop execution {execution_arn}", attempt)


def running_uploads_for(state_machine_arn: str, stack_id: str, logical_resource_id: str) -> list[str]:
    """ARNs of running executions working for this stack's resource (read from their input)."""

    def attempt() -> list[str]:
        stepfunctions = aws.client("stepfunctions")
        pages = stepfunctions.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING")
        found = []
        for execution in (e for page in pages for e in page["executions"]):
            described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
            request = json.loads(described.get("input") or "{}").get("request", {})
            if request.get("stack_id") == stack_id and request.get("logical_resource_id") == logical_resource_id:
                found.append(str(execution["executionArn"]))
        return found

    return aws.call(f"list running uploads of {logical_resource_id}", attempt)
