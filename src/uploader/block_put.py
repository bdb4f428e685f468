"""PutSnapshotBlock as one hand-built, SigV4-signed HTTP request: the worker's hot path.

A worker makes ~125 of these calls a second. Through a botocore client each one costs ~1 ms of
CPU beyond the block's own SHA-256, nearly all of it in generic machinery: case-insensitive
header dicts, event hooks, endpoint rules, ``email``-based header parsing (profiled in
benchmarks/RESULTS.md). This request is fixed: a path, six headers and a 512 KiB body. So it
is built here directly, and sent on kept-alive connections (wire.py).

What it takes from botocore is what must agree with AWS: the endpoint, region and service
model of an ``ebs`` client, the session's credentials (refreshed by botocore), the CA bundle,
and botocore's parser for error answers, so callers see the same ``ClientError`` codes and
the same network exceptions as from the client.

The body is not signed over HTTPS (``UNSIGNED-PAYLOAD``, as the service model's
``v4-unsigned-body`` asks): the signed ``x-amz-Checksum`` header covers it, and EBS refuses a
body that does not match. Over plain HTTP (the local emulation) SigV4 requires the body's
SHA-256, which is that checksum already, so nothing is hashed twice.

``tests/unit/test_block_put.py`` checks the signature against botocore's signer and the
request against what botocore's client sends; the strict emulation verifies every signature.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from typing import Any

from botocore.awsrequest import HeadersDict
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from uploader import digests, geometry, wire

OPERATION = "PutSnapshotBlock"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class BlockPutter:
    """Puts 512 KiB blocks; thread-safe (each call takes its own connection).

    Built from public botocore parts only: the Lambda runtime brings its own botocore."""

    def __init__(self, ebs_client: Any, credentials: Any) -> None:
        meta = ebs_client.meta
        self.endpoint = wire.Endpoint(meta.endpoint_url)
        self.region = meta.region_name
        self.service = meta.service_model.signing_name
        self.credentials = credentials  # the session's; botocore refreshes them when they expire
        self.output_shape = meta.service_model.operation_model(OPERATION).output_shape
        self.parser = create_parser("rest-json")
        self.keys_lock = threading.Lock()
        self.signing_key: tuple[tuple[str, str], bytes] | None = None

    # --- signing (SigV4, https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)

    def signed_headers(
        self, snapshot_id: str, block_index: int, digest: bytes, length: int, *, now: float | None = None
    ) -> tuple[str, list[tuple[str, str]]]:
        """The request path and its headers, Authorization included."""
        frozen = self.credentials.get_frozen_credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        path = f"{self.endpoint.base_path}/snapshots/{snapshot_id}/blocks/{block_index}"
        payload_hash = UNSIGNED_PAYLOAD if self.endpoint.https else digest.hex()
        # Lower-case names in SigV4's sorted order: they are the canonical headers as they are.
        headers = [
            ("host", self.endpoint.netloc),
            ("x-amz-checksum", digests.block_checksum_b64(digest)),
            ("x-amz-checksum-algorithm", "SHA256"),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-data-length", str(length)),
            ("x-amz-date", amz_date),
        ]
        if frozen.token:
            headers.append(("x-amz-security-token", frozen.token))
        names = ";".join(name for name, _ in headers)
        canonical = "\n".join(["PUT", path, "", *(f"{name}:{value}" for name, value in headers), "", names, payload_hash])
        scope = f"{amz_date[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(frozen.secret_key, amz_date[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
        authorization = f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
        return path, [*headers, ("authorization", authorization), ("user-agent", wire.USER_AGENT)]

    def _key(self, secret_key: str, day: str) -> bytes:
        """The day's signing key, derived once a day instead of four HMACs per block."""
        with self.keys_lock:
            if self.signing_key is not None and self.signing_key[0] == (secret_key, day):
                return self.signing_key[1]
        key = f"AWS4{secret_key}".encode()
        for part in (day, self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        with self.keys_lock:
            self.signing_key = ((secret_key, day), key)
        return key

    # --- sending ---------------------------------------------------------------------------

    def put(self, snapshot_id: str, block_index: int, block: bytes, digest: bytes) -> None:
        """Write one block. Raises ``ClientError`` for EBS's refusals, and botocore's network
        errors for the transport (wire.py), as the client's ``put_snapshot_block`` would."""
        if len(block) != geometry.BLOCK_SIZE:
            raise ValueError(f"Block {block_index} is {len(block)} bytes; EBS takes {geometry.BLOCK_SIZE} only")
        path, headers = self.signed_headers(snapshot_id, block_index, digest, len(block))
        answer = self.endpoint.send("PUT", path, headers, block)
        if answer.status == 201:
            return
        parsed = self.parser.parse(
            {"status_code": answer.status, "headers": HeadersDict(answer.headers), "body": answer.body}, self.output_shape
        )
        raise ClientError(parsed, OPERATION)
