"""The two calls a worker makes per block, answered in front of moto's dispatch.

A PutSnapshotBlock and a ranged GetObject cost the in-process emulation several milliseconds
each in Flask routing and moto's generic request parsing, which on a 2-core machine caps
what the benchmark can show of the uploader. This WSGI layer answers exactly those two,
on their success path, with the same state and the same rules:

- PutSnapshotBlock has its SigV4 signature verified (sigv4_check.py: the provider signs it
  itself), then goes to ``StrictEbs.put_snapshot_block`` (the whole contract, faults
  included); its errors are rendered as moto renders ``EbsError``;
- a ranged GET of an existing object with a satisfiable range and a matching If-Match is
  served from the object's bytes, with the headers moto sends; a presigned one is refused
  once its URL has expired, which moto does not check.

Anything else, including every S3 error case, goes to moto unchanged.
"""

from __future__ import annotations

import calendar
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.s3.models import s3_backends

from ebs_snapshot_local.sigv4_check import signature_problem
from ebs_snapshot_local.strict_ebs import EbsError, StrictEbs

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
BLOCK_PATH = re.compile(r"^/snapshots/(?P<snapshot>[^/]+)/blocks/(?P<index>\d+)$")
SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[a-z0-9-]+)/aws4_request")
PRESIGNED_S3 = re.compile(r"(?:^|&)X-Amz-Credential=[^&]*%2Fs3%2Faws4_request(?:&|$)")
SIMPLE_RANGE = re.compile(r"^bytes=(?P<first>\d+)-(?P<last>\d+)$")


class FastLane:
    def __init__(self, app: WsgiApp, strict: StrictEbs, account_id: str, secret_key: str) -> None:
        self.app = app
        self.strict = strict
        self.account_id = account_id
        self.secret_key = secret_key

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        service = SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        method = environ["REQUEST_METHOD"]
        if service and service["service"] == "ebs" and method == "PUT":
            match = BLOCK_PATH.match(environ.get("PATH_INFO", ""))
            if match:
                return self.put_snapshot_block(environ, start_response, match["snapshot"], match["index"])
        s3 = (service and service["service"] == "s3") or PRESIGNED_S3.search(environ.get("QUERY_STRING", ""))
        if s3 and method == "GET" and "HTTP_RANGE" in environ:
            answered = self.ranged_get(environ, start_response)
            if answered is not None:
                return answered
        return self.app(environ, start_response)

    def put_snapshot_block(
        self, environ: dict[str, Any], start_response: Callable[..., Any], snapshot_id: str, index: str
    ) -> Iterable[bytes]:
        data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            problem = signature_problem(environ, data, self.secret_key)
            if problem is not None:
                raise EbsError("InvalidSignatureException", problem, status=403)
            checksum = self.strict.put_snapshot_block(
                snapshot_id,
                index,
                data,
                environ.get("HTTP_X_AMZ_DATA_LENGTH"),
                environ.get("HTTP_X_AMZ_CHECKSUM"),
                environ.get("HTTP_X_AMZ_CHECKSUM_ALGORITHM"),
            )
        except EbsError as error:
            start_response(f"{error.code} Error", [*error.headers.items(), ("x-amzn-RequestId", request_id())])
            return [error.description.encode()]
        start_response(
            "201 Created",
            [
                ("x-amz-Checksum", checksum),
                ("x-amz-Checksum-Algorithm", "SHA256"),
                ("Content-Type", "application/json"),
                ("x-amzn-RequestId", request_id()),
            ],
        )
        return [b"{}"]

    def ranged_get(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        wanted = SIMPLE_RANGE.match(environ["HTTP_RANGE"].strip())
        bucket, _, key_name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
        query = environ.get("QUERY_STRING", "")
        if wanted is None or not key_name or (query and not PRESIGNED_S3.search(query)):
            return None
        if query and presigned_url_expired(query):  # moto would serve it
            start_response("403 Forbidden", [("Content-Type", "application/xml"), ("x-amz-request-id", request_id())])
            return [
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b"<Message>Request has expired</Message></Error>"
            ]
        try:
            key = s3_backends[self.account_id]["aws"].get_object(bucket, key_name)
        except Exception:  # noqa: BLE001 - no such bucket and the like: moto answers those
            return None
        if key is None:
            return None
        if_match = environ.get("HTTP_IF_MATCH")
        if if_match is not None and if_match.strip() not in (key.etag, "*"):
            return None
        first, last = int(wanted["first"]), int(wanted["last"])
        if first > last or first >= key.size:
            return None
        last = min(last, key.size - 1)
        headers = {name: str(value) for name, value in key.response_dict.items() if name.lower() != "content-length"}
        headers.update({name.lower(): str(value) for name, value in key.metadata.items()})
        headers.update(
            {
                "content-range": f"bytes {first}-{last}/{key.size}",
                "Accept-Ranges": "bytes",
                "x-amz-request-id": request_id(),
            }
        )
        start_response("206 Partial Content", list(headers.items()))
        return [bytes(key.value[first : last + 1])]


def presigned_url_expired(query: str) -> bool:
    fields = dict(urllib.parse.parse_qsl(query))
    try:
        signed_at = calendar.timegm(time.strptime(fields["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        return time.time() > signed_at + int(fields["X-Amz-Expires"])
    except (KeyError, ValueError):
        return True


def request_id() -> str:
    return uuid.uuid4().hex
