"""The only code that writes to a CloudFormation ResponseURL.

Used by crhelper (for answers given in the handler) and by the Respond state (for answers the
execution gives). The URL is presigned: whoever holds it can answer for the resource, so it is
never logged. The body is kept under CloudFormation's 4,096-byte limit by shortening Reason.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="ebs-snapshot-provider", child=True)

MAX_BODY_BYTES = 4096
MAX_REASON_CHARS = 1024
ATTEMPTS = 5
TIMEOUT_SECONDS = 10


def response_body(
    *,
    status: str,
    request_id: str,
    stack_id: str,
    logical_resource_id: str,
    physical_resource_id: str,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A CloudFormation response; Reason keeps its tail when long (the cause is usually last)."""
    if len(reason) > MAX_REASON_CHARS:
        reason = "..." + reason[-(MAX_REASON_CHARS - 3) :]
    body: dict[str, Any] = {
        "Status": status,
        "Reason": reason or status,
        "PhysicalResourceId": physical_resource_id,
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": logical_resource_id,
        "NoEcho": False,
        "Data": data or {},
    }
    overflow = len(json.dumps(body).encode()) - MAX_BODY_BYTES
    if overflow > 0:
        body["Reason"] = "..." + body["Reason"][overflow + 3 :]
    return body


def send(response_url: str, body: dict[str, Any]) -> None:
    """PUT ``body`` to ``response_url`` with bounded retries; raises when every attempt fails."""
    if urllib.parse.urlsplit(response_url).scheme not in ("https", "http"):
        raise ValueError("ResponseURL must be an http(s) URL")
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "", "Content-Length": str(len(payload))}
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(response_url, data=payload, method="PUT", headers=headers)  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310 - scheme checked
                logger.info(
                    "Answered CloudFormation",
                    status=body["Status"],
                    physical_resource_id=body["PhysicalResourceId"],
                    cfn_request_id=body["RequestId"],
                    http_status=answer.status,
                )
                return
        except (urllib.error.URLError, OSError) as error:
            # The error text can quote the URL; log only its class.
            logger.warning("Answer to CloudFormation failed", attempt=attempt, error=type(error).__name__)
            if attempt == ATTEMPTS:
                raise ResponseNotDelivered(f"Could not deliver the {body['Status']} answer after {ATTEMPTS} attempts") from None
            time.sleep(random.uniform(0.5, 2.0) * attempt)


class ResponseNotDelivered(Exception):
    """Every attempt to PUT the answer to CloudFormation failed."""
