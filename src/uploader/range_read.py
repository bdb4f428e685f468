"""Ranged GETs of the image through a presigned URL: the worker's other per-block call.

Each 4 MiB read through a botocore client costs ~0.4 ms of CPU per 512 KiB block, most of it
urllib3's and botocore's buffering and copies of the body (benchmarks/RESULTS.md); for a
sparse image, whose zero blocks are read but never written, that is nearly all of the
worker's work. Here botocore signs (``generate_presigned_url``: its addressing, endpoint
rules and credentials) and the body is read in one piece on a keep-alive connection
(wire.py). S3's error answers go through botocore's parser, so callers see the same
``ClientError`` codes as from ``get_object``.

Range and If-Match are not signed: a presigned URL signs only the host, and S3 honours both
headers unsigned. If-Match pins the object, so a replaced image fails instead of mixing.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import HeadersDict
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from uploader import wire

OPERATION = "GetObject"
# A URL is signed for this long and replaced after half of it, so none expires in flight
# (a range takes at most Lambda's 15 minutes, and a call its retry budget).
URL_LIFETIME_SECONDS = 900
_endpoints: dict[str, wire.Endpoint] = {}
_endpoints_lock = threading.Lock()


class RangeReader:
    """Reads byte ranges of one object; thread-safe."""

    def __init__(self, s3_client: Any, bucket: str, key: str, etag: str | None) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.output_shape = s3_client.meta.service_model.operation_model(OPERATION).output_shape
        self.parser = create_parser("rest-xml")
        self.lock = threading.Lock()
        self.url: tuple[float, wire.Endpoint, str] | None = None  # (signed at, endpoint, target)
        self.redirected = False

    def read(self, first_byte: int, last_byte: int) -> bytes:
        """Bytes ``first_byte..last_byte`` (inclusive). Raises ``ClientError`` as ``get_object``
        would, and botocore's network errors for the transport."""
        return self._get(first_byte, last_byte, None).body

    def read_into(self, first_byte: int, last_byte: int, buffer: bytearray) -> int:
        """The same range, into the start of ``buffer`` (at least as long); returns its length."""
        if len(buffer) < last_byte - first_byte + 1:
            raise ValueError(f"A buffer of {len(buffer)} bytes cannot hold bytes {first_byte}-{last_byte}")
        return self._get(first_byte, last_byte, buffer).length

    def _get(self, first_byte: int, last_byte: int, into: bytearray | None) -> wire.Answer:
        if self.redirected:
            answer = self._get_through_client(first_byte, last_byte, into)
        else:
            answer = self._get_presigned(first_byte, last_byte, into)
        if answer.status == 403 and not self.redirected and b"expired" in answer.body.lower():
            # Signed too long ago (a sandbox frozen between invocations, say): sign again, once.
            with self.lock:
                self.url = None
            answer = self._get_presigned(first_byte, last_byte, into)
        region = HeadersDict(answer.headers).get("x-amz-bucket-region")
        elsewhere = answer.status == 400 and region and region != self.s3.meta.region_name
        if answer.status in (301, 307) or elsewhere:
            # botocore presigns for the global endpoint (bucket.s3.amazonaws.com): S3 redirects
            # from there for a bucket created in the last day, and for one in another region
            # redirects or refuses the signature's region. botocore's client follows S3 to the
            # bucket's regional endpoint, so it reads from now on.
            self.redirected = True
            answer = self._get_through_client(first_byte, last_byte, into)
        wanted = last_byte - first_byte + 1
        if answer.status == 206 and answer.length == wanted:
            return answer
        if answer.status < 300:
            raise ClientError(
                {
                    "Error": {
                        "Code": "IncompleteRead",
                        "Message": f"asked for {wanted} bytes at {first_byte}, got {answer.length} (HTTP {answer.status})",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 500},  # retried, as a short read is
                },
                OPERATION,
            )
        parsed = self.parser.parse(
            {"status_code": answer.status, "headers": HeadersDict(answer.headers), "body": answer.body}, self.output_shape
        )
        raise ClientError(parsed, OPERATION)

    def _get_presigned(self, first_byte: int, last_byte: int, into: bytearray | None) -> wire.Answer:
        endpoint, target = self._presigned()
        headers = [("host", endpoint.netloc), ("range", f"bytes={first_byte}-{last_byte}"), ("user-agent", wire.USER_AGENT)]
        if self.etag:
            headers.append(("if-match", self.etag))
        return endpoint.send("GET", target, headers, into=into)

    def _get_through_client(self, first_byte: int, last_byte: int, into: bytearray | None) -> wire.Answer:
        extra = {"IfMatch": self.etag} if self.etag else {}
        response = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={first_byte}-{last_byte}", **extra)
        body: bytes = response["Body"].read()
        if into is None:
            return wire.Answer(206, [], body, len(body))
        if len(body) <= len(into):  # a longer body fails the length check; it must not grow the buffer
            into[: len(body)] = body
        return wire.Answer(206, [], b"", len(body))

    def _presigned(self) -> tuple[wire.Endpoint, str]:
        with self.lock:
            # Wall-clock time, as S3 judges the URL's age (a monotonic clock may stand still
            # while a Lambda sandbox is frozen).
            if self.url is None or time.time() - self.url[0] > URL_LIFETIME_SECONDS / 2:
                url = self.s3.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": self.key}, ExpiresIn=URL_LIFETIME_SECONDS
                )
                parts = urlsplit(url)
                self.url = (time.time(), endpoint_for(f"{parts.scheme}://{parts.netloc}"), f"{parts.path}?{parts.query}")
            return self.url[1], self.url[2]


def endpoint_for(origin: str) -> wire.Endpoint:
    """One ``wire.Endpoint`` (and so one set of kept-alive connections) per host, per process."""
    with _endpoints_lock:
        endpoint = _endpoints.get(origin)
        if endpoint is None:
            endpoint = _endpoints[origin] = wire.Endpoint(origin)
        return endpoint
