"""The local EBS enforces the real contract, so a test that passes here means something.

Plain moto EBS accepts all of these; the strict emulation must reject each one with the
error AWS sends.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from ebs_snapshot_local.emulation import LocalEmulation
from tests.integration.conftest import wait_until_completed
from uploader import aws
from uploader.block_put import BlockPutter

BLOCK = 524_288


def checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def ebs(emulation: LocalEmulation) -> Any:
    return emulation.client("ebs")


@pytest.fixture
def snapshot(ebs: Any, emulation: LocalEmulation) -> Iterator[str]:
    snapshot_id = ebs.start_snapshot(VolumeSize=1, ClientToken=uuid.uuid4().hex, Tags=[{"Key": "test", "Value": "strict"}])[
        "SnapshotId"
    ]
    yield snapshot_id
    try:
        emulation.client("ec2").delete_snapshot(SnapshotId=snapshot_id)
    except ClientError:
        pass


def put(ebs: Any, snapshot_id: str, index: int, data: bytes, *, length: int | None = None, digest: str | None = None) -> Any:
    return ebs.put_snapshot_block(
        SnapshotId=snapshot_id,
        BlockIndex=index,
        BlockData=data,
        DataLength=len(data) if length is None else length,
        Checksum=digest or checksum(data),
        ChecksumAlgorithm="SHA256",
    )


def rejected(call: Any, code: str = "ValidationException") -> ClientError:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == code
    return raised.value


def test_start_snapshot_reports_512_kib_blocks(ebs: Any) -> None:
    started = ebs.start_snapshot(VolumeSize=1, ClientToken=uuid.uuid4().hex)
    assert started["BlockSize"] == BLOCK and started["Status"] == "pending" and started["SseType"] == "none"


def test_block_of_the_wrong_size_is_rejected(ebs: Any, snapshot: str) -> None:
    rejected(lambda: put(ebs, snapshot, 0, b"x" * 1000))
    rejected(lambda: put(ebs, snapshot, 0, b"x" * 1000, length=BLOCK))


def test_block_whose_checksum_does_not_match_is_rejected(ebs: Any, snapshot: str) -> None:
    error = rejected(lambda: put(ebs, snapshot, 0, b"a" * BLOCK, digest=checksum(b"b" * BLOCK)))
    assert "does not match" in error.response["Error"]["Message"]


def test_block_index_past_the_volume_is_rejected(ebs: Any, snapshot: str) -> None:
    put(ebs, snapshot, 2047, b"a" * BLOCK)
    rejected(lambda: put(ebs, snapshot, 2048, b"a" * BLOCK))


def test_complete_with_wrong_count_or_aggregate_is_rejected(ebs: Any, snapshot: str) -> None:
    data = b"a" * BLOCK
    put(ebs, snapshot, 3, data)
    good = base64.b64encode(hashlib.sha256(hashlib.sha256(data).digest()).digest()).decode()
    linear = {"ChecksumAlgorithm": "SHA256", "ChecksumAggregationMethod": "LINEAR"}
    rejected(lambda: ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=2, Checksum=good, **linear))
    rejected(lambda: ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=1, Checksum=checksum(b"bogus"), **linear))
    assert ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=1, Checksum=good, **linear)["Status"] == "pending"


def test_write_to_a_snapshot_that_is_not_pending_is_rejected(ebs: Any, snapshot: str) -> None:
    ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=0)
    rejected(lambda: put(ebs, snapshot, 0, b"a" * BLOCK))


def test_write_to_a_deleted_snapshot_is_not_found(ebs: Any, snapshot: str, emulation: LocalEmulation) -> None:
    emulation.client("ec2").delete_snapshot(SnapshotId=snapshot)
    rejected(lambda: put(ebs, snapshot, 0, b"a" * BLOCK), "ResourceNotFoundException")


def test_client_token_returns_the_same_snapshot_or_a_conflict(ebs: Any, emulation: LocalEmulation) -> None:
    token = uuid.uuid4().hex
    first = ebs.start_snapshot(VolumeSize=1, ClientToken=token, Description="a")["SnapshotId"]
    assert ebs.start_snapshot(VolumeSize=1, ClientToken=token, Description="a")["SnapshotId"] == first
    rejected(lambda: ebs.start_snapshot(VolumeSize=2, ClientToken=token, Description="a"), "ConflictException")
    emulation.client("ec2").delete_snapshot(SnapshotId=first)


def test_ec2_sees_pending_until_completed(ebs: Any, snapshot: str, emulation: LocalEmulation) -> None:
    ec2 = emulation.client("ec2")
    assert ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"] == "pending"
    ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=0)
    wait_until_completed(emulation, snapshot)


def test_volume_size_out_of_range_is_rejected(ebs: Any) -> None:
    rejected(lambda: ebs.start_snapshot(VolumeSize=65537, ClientToken=uuid.uuid4().hex))


def test_a_block_signed_with_the_wrong_key_is_refused(snapshot: str, emulation: LocalEmulation) -> None:
    wrong = boto3.session.Session("testing", "not-the-secret", "testing", region_name=emulation.region)
    ebs = wrong.client("ebs", endpoint_url=emulation.endpoint_url)
    error = rejected(lambda: put(ebs, snapshot, 0, bytes(BLOCK)), "InvalidSignatureException")
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_providers_own_block_requests_are_signed_as_aws_checks_them(
    ebs: Any, snapshot: str, emulation: LocalEmulation
) -> None:
    data = os.urandom(BLOCK)
    digest = hashlib.sha256(data).digest()
    putter = aws.block_putter()
    putter.put(snapshot, 3, data, digest)  # accepted: the strict EBS recomputed its signature
    # Signed with another key: refused, as AWS refuses it.
    wrong_key = BlockPutter(emulation.client("ebs"), Credentials("testing", "not-the-secret", "testing"))
    with pytest.raises(ClientError) as raised:
        wrong_key.put(snapshot, 4, data, digest)
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=1)
    wait_until_completed(emulation, snapshot)
    token = block_token(ebs, snapshot, 3)
    assert ebs.get_snapshot_block(SnapshotId=snapshot, BlockIndex=3, BlockToken=token)["BlockData"].read() == data


def block_token(ebs: Any, snapshot_id: str, index: int) -> str:
    blocks = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]
    return str(next(block["BlockToken"] for block in blocks if block["BlockIndex"] == index))


@pytest.mark.parametrize(
    ("seconds_ago", "problem"), [(3600, "Signature expired"), (0, "Credential should be scoped to a valid date")]
)
def test_a_block_signed_too_long_ago_or_for_another_day_is_refused(
    snapshot: str, emulation: LocalEmulation, seconds_ago: int, problem: str
) -> None:
    putter = aws.block_putter()
    data = os.urandom(BLOCK)
    path, headers = putter.signed_headers(snapshot, 0, hashlib.sha256(data).digest(), BLOCK, now=time.time() - seconds_ago)
    if seconds_ago == 0:  # signed now, but the credential scope names another day
        headers = [
            (name, value.replace("/" + time.strftime("%Y%m%d", time.gmtime()) + "/", "/20200101/")) for name, value in headers
        ]
    answer = putter.endpoint.send("PUT", path, headers, data)
    assert answer.status == 403 and problem.encode() in answer.body, answer.body
