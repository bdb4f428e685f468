"""SigV4 verification of a request as AWS does it, so the emulation refuses a badly signed call.

moto accepts any signature. The provider signs PutSnapshotBlock itself (uploader/block_put.py),
so the strict EBS recomputes every block's signature with botocore's signer (an implementation
independent of the provider's) and the emulation's secret key, and checks the payload hash.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW_SECONDS = 15 * 60  # AWS refuses requests signed further from its clock


def signature_problem(environ: dict[str, Any], body: bytes, secret_key: str) -> str | None:
    """None when the WSGI request is signed correctly for ``secret_key``, else what is wrong."""
    match = AUTHORIZATION.match(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        return "The request has no valid AWS4-HMAC-SHA256 Authorization header."
    headers: dict[str, str] = {}
    for name in match["signed"].split(";"):
        value = header(environ, name)
        if value is None:
            return f"The signed header {name} was not sent."
        headers[name] = value
    if "host" not in headers or "x-amz-date" not in headers:
        return "The signature must cover the host and x-amz-date headers."
    if headers["x-amz-date"][:8] != match["day"]:
        return f"Credential should be scoped to a valid date: {headers['x-amz-date'][:8]}, not {match['day']}."
    try:
        signed_at = calendar.timegm(time.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return f"x-amz-date {headers['x-amz-date']} is not a SigV4 timestamp."
    if abs(time.time() - signed_at) > MAX_SKEW_SECONDS:
        return "Signature expired: the request time is more than 15 minutes from the server's."
    payload_hash = headers.get("x-amz-content-sha256") or header(environ, "x-amz-content-sha256")
    if payload_hash not in (None, UNSIGNED_PAYLOAD) and payload_hash != hashlib.sha256(body).hexdigest():
        return "The provided x-amz-content-sha256 header does not match what was computed."
    path = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    request = AWSRequest(method=environ["REQUEST_METHOD"], url=f"http://{headers['host']}{path}", data=body, headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(match["key"], secret_key), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return None


def header(environ: dict[str, Any], name: str) -> str | None:
    if name in ("content-length", "content-type"):
        value = environ.get(name.upper().replace("-", "_"))
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else str(value)
