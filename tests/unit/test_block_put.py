"""The hand-built PutSnapshotBlock is the request botocore would send, signed as botocore signs.

Nothing here reaches AWS: botocore's own client is stopped at ``before-send`` and its request
compared with ours, and botocore's own signer recomputes our signature.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

from uploader import block_put, digests, geometry

SNAPSHOT = "snap-0123456789abcdef0"
BLOCK = os.urandom(geometry.BLOCK_SIZE)
DIGEST = hashlib.sha256(BLOCK).digest()
SIGNED_AT = datetime.datetime(2026, 12, 4, 6, 30, 15, tzinfo=datetime.UTC)


KEY_ID, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example"


def ebs_client(endpoint_url: str | None = None) -> Any:
    session = boto3.session.Session(KEY_ID, SECRET, TOKEN, region_name="eu-west-1")
    return session.client("ebs", endpoint_url=endpoint_url)


def putter_for(client: Any) -> block_put.BlockPutter:
    return block_put.BlockPutter(client, Credentials(KEY_ID, SECRET, TOKEN))


def sent_by_botocore(client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The prepared request botocore's client sends for the same block, at SIGNED_AT."""
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None))
    captured: dict[str, Any] = {}

    def stop(request: Any, **_: Any) -> AWSResponse:
        captured["request"] = request
        response = AWSResponse(request.url, 201, {}, None)
        response._content = b"{}"
        return response

    client.meta.events.register("before-send.ebs.PutSnapshotBlock", stop)
    client.put_snapshot_block(
        SnapshotId=SNAPSHOT,
        BlockIndex=4097,
        BlockData=BLOCK,
        DataLength=len(BLOCK),
        Checksum=digests.block_checksum_b64(DIGEST),
        ChecksumAlgorithm="SHA256",
    )
    return captured["request"]


@pytest.mark.parametrize("endpoint_url", [None, "http://127.0.0.1:5999"])
def test_the_request_is_the_one_botocores_client_sends(endpoint_url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EBS"):  # None: botocore's own endpoint for the region
        monkeypatch.delenv(name, raising=False)
    client = ebs_client(endpoint_url)
    theirs = sent_by_botocore(client, monkeypatch)
    path, headers = putter_for(client).signed_headers(SNAPSHOT, 4097, DIGEST, len(BLOCK), now=SIGNED_AT.timestamp())
    ours = dict(headers)
    assert urlsplit(theirs.url).path == path
    assert urlsplit(theirs.url).netloc == ours["host"]
    assert theirs.method == "PUT"
    # Every header botocore sends that AWS reads, with the same value (its SDK bookkeeping aside).
    ignored = {"user-agent", "amz-sdk-invocation-id", "amz-sdk-request", "content-length", "authorization"}
    theirs_headers = {
        name.lower(): value.decode() if isinstance(value, bytes) else value
        for name, value in theirs.headers.items()
        if name.lower() not in ignored
    }
    if endpoint_url is None:  # HTTPS: body unsigned, as the service model asks
        assert theirs_headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    else:  # plain HTTP: botocore signs the body's SHA-256 without sending the header; we send it
        theirs_headers["x-amz-content-sha256"] = hashlib.sha256(BLOCK).hexdigest()
    assert {name: ours.get(name) for name in theirs_headers} == theirs_headers
    if endpoint_url is None:
        # Same signed headers, same signature: the one botocore computed is the one we send.
        assert ours["authorization"] == theirs.headers["Authorization"].decode()


@pytest.mark.parametrize(
    ("endpoint_url", "token"),
    [(None, "session-token-example"), (None, None), ("http://127.0.0.1:5999", None), ("https://ebs.example.test/base", "t")],
)
def test_botocores_signer_computes_the_same_signature(endpoint_url: str | None, token: str | None) -> None:
    client = ebs_client(endpoint_url)
    credentials = Credentials(KEY_ID, SECRET, token)
    putter = block_put.BlockPutter(client, credentials)
    path, headers = putter.signed_headers(SNAPSHOT, 12, DIGEST, len(BLOCK), now=SIGNED_AT.timestamp())
    ours = dict(headers)
    scheme = urlsplit(client.meta.endpoint_url).scheme
    request = AWSRequest(
        method="PUT",
        url=f"{scheme}://{ours['host']}{path}",
        data=BLOCK,
        headers={name: value for name, value in headers if name not in ("authorization", "user-agent", "host")},
    )
    request.context["timestamp"] = SIGNED_AT.strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4Auth(credentials, "ebs", "eu-west-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    assert ours["authorization"].endswith(f"Signature={signature}")
    assert "Credential=AKIDEXAMPLE/20261204/eu-west-1/ebs/aws4_request" in ours["authorization"]
    assert ("x-amz-security-token" in ours) == bool(token)


def test_a_new_day_gets_a_new_signing_key() -> None:
    putter = putter_for(ebs_client())
    _, first = putter.signed_headers(SNAPSHOT, 0, DIGEST, len(BLOCK), now=SIGNED_AT.timestamp())
    _, next_day = putter.signed_headers(SNAPSHOT, 0, DIGEST, len(BLOCK), now=SIGNED_AT.timestamp() + 86_400)
    assert "/20261205/" in dict(next_day)["authorization"]
    assert dict(first)["authorization"].split("Signature=")[1] != dict(next_day)["authorization"].split("Signature=")[1]


def test_a_block_of_the_wrong_size_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="Block 7 is 4096 bytes; EBS takes 524288 only"):
        putter_for(ebs_client("http://127.0.0.1:9")).put(SNAPSHOT, 7, bytes(4096), DIGEST)
