"""The emulation's own machinery that the benchmark relies on: keep-alive connections, the
fast lane for block puts and ranged GETs, and workers in sandbox processes."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import time
import uuid
from urllib.parse import urlsplit

import pytest

from ebs_snapshot_local.emulation import LocalEmulation
from tests.integration.conftest import BLOCK, CloudFormation
from uploader import aws
from uploader.errors import AwsCallFailed
from uploader.range_read import RangeReader

SIGNED_FOR_S3 = "AWS4-HMAC-SHA256 Credential=testing/20261203/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=0"


def test_one_connection_carries_many_requests_and_ranged_gets_match_the_object(
    emulation: LocalEmulation, cloudformation: CloudFormation
) -> None:
    # GIVEN an object of 3 blocks
    content = os.urandom(3 * BLOCK)
    bucket, key = emulation.stage_image(cloudformation.image(content))
    etag = emulation.client("s3").head_object(Bucket=bucket, Key=key)["ETag"]
    host = urlsplit(emulation.endpoint_url)
    connection = http.client.HTTPConnection(str(host.hostname), host.port, timeout=10)
    answers = []
    # WHEN three ranged GETs go over one connection (the last one past the end, and one with a stale ETag)
    for first, last, if_match in ((0, 9, etag), (BLOCK, 2 * BLOCK - 1, etag), (3 * BLOCK - 5, 4 * BLOCK, etag), (0, 9, '"0"')):
        connection.request(
            "GET",
            f"/{bucket}/{key}",
            headers={"Range": f"bytes={first}-{last}", "If-Match": if_match, "Authorization": SIGNED_FOR_S3},
        )
        response = connection.getresponse()
        answers.append((response.status, response.getheader("Content-Range"), response.read(), response.getheader("ETag")))
        socket_in_use = connection.sock
        assert socket_in_use is not None  # THEN the server kept the connection open
    connection.close()
    # THEN the bytes and headers are S3's
    assert answers[0] == (206, f"bytes 0-9/{3 * BLOCK}", content[:10], etag)
    assert answers[1] == (206, f"bytes {BLOCK}-{2 * BLOCK - 1}/{3 * BLOCK}", content[BLOCK : 2 * BLOCK], etag)
    assert answers[2][:3] == (206, f"bytes {3 * BLOCK - 5}-{3 * BLOCK - 1}/{3 * BLOCK}", content[-5:])
    assert answers[3][0] == 412  # a stale If-Match is moto's to answer, as S3 does


def test_block_put_errors_through_the_fast_lane_read_as_ebs_sends_them(emulation: LocalEmulation) -> None:
    ebs = emulation.client("ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=1, ClientToken=uuid.uuid4().hex)["SnapshotId"]
    block = os.urandom(BLOCK)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    try:
        ebs.put_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=0, BlockData=block, DataLength=BLOCK, Checksum=wrong, ChecksumAlgorithm="SHA256"
        )
        raise AssertionError("a wrong checksum was accepted")
    except ebs.exceptions.ValidationException as error:
        assert "does not match the data of block 0" in error.response["Error"]["Message"]
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    finally:
        emulation.client("ec2").delete_snapshot(SnapshotId=snapshot_id)


def test_workers_in_sandbox_processes_write_the_exact_image_and_report_their_cost(
    emulation: LocalEmulation, cloudformation: CloudFormation
) -> None:
    # GIVEN WriteRange running in sandbox processes, as the benchmark runs it
    assert emulation.deployment is not None
    worker = emulation.deployment.functions["WriteRangeFunction"].name
    sandboxes = emulation.runtime.isolate_functions({worker})
    try:
        image = cloudformation.image(os.urandom(40 * BLOCK), 30 * BLOCK, os.urandom(BLOCK + 7))
        # WHEN a Create runs
        answer = cloudformation.create(cloudformation.stage(image))
        # THEN the snapshot holds the image, and every worker invocation reported its CPU and memory
        assert answer["Status"] == "SUCCESS", answer.get("Reason")
        cloudformation.assert_snapshot_equals_image(answer["PhysicalResourceId"], image)
        assert answer["Data"]["BlocksWritten"] == 42
        assert sandboxes.stats, "no worker ran in a sandbox"
        assert all(s.function_name == worker and not s.errored for s in sandboxes.stats)
        assert all(s.cpu_seconds > 0 and 20 << 20 < s.peak_rss_bytes < 2 << 30 for s in sandboxes.stats)
        assert cloudformation.delete(answer["PhysicalResourceId"], {})["Status"] == "SUCCESS"
    finally:
        emulation.runtime.isolate_functions(set()).close()


def test_the_workers_ranged_reads_return_the_objects_bytes_and_a_replaced_object_fails_at_once(
    emulation: LocalEmulation, cloudformation: CloudFormation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an image in S3 and its ETag, read the way a worker reads (presigned URL, kept connection)
    content = os.urandom(3 * BLOCK)
    bucket, key = emulation.stage_image(cloudformation.image(content))
    etag = emulation.client("s3").head_object(Bucket=bucket, Key=key)["ETag"]
    # THEN each range is the object's bytes, the last one clipped at the end
    assert aws.get_object_range(bucket, key, 0, 9, etag) == content[:10]
    assert aws.get_object_range(bucket, key, BLOCK, 3 * BLOCK - 1, etag) == content[BLOCK:]
    # WHEN the object was replaced (another ETag), THEN the read fails at once, naming the cause
    monkeypatch.setattr(aws.time, "sleep", lambda _: pytest.fail("a replaced object must not be retried"))
    with pytest.raises(AwsCallFailed, match=f"read bytes 0-9 of s3://{bucket}/{key}: PreconditionFailed"):
        aws.get_object_range(bucket, key, 0, 9, '"0123456789abcdef0123456789abcdef"')


def test_a_presigned_url_is_refused_once_it_has_expired(emulation: LocalEmulation, cloudformation: CloudFormation) -> None:
    bucket, key = emulation.stage_image(cloudformation.image(os.urandom(BLOCK)))
    reader = RangeReader(aws.client("s3"), bucket, key, None)
    assert reader.read(0, 9)
    _signed_at, endpoint, target = reader.url or (0.0, None, "")
    expired = target.replace("X-Amz-Expires=900", "X-Amz-Expires=0")
    assert endpoint is not None and expired != target
    time.sleep(1.1)
    answer = endpoint.send("GET", expired, [("host", endpoint.netloc), ("range", "bytes=0-9")])
    assert answer.status == 403


def test_the_workers_presigned_urls_are_sigv4(emulation: LocalEmulation, cloudformation: CloudFormation) -> None:
    bucket, key = emulation.stage_image(cloudformation.image(os.urandom(BLOCK)))
    reader = aws.range_reader(bucket, key, None)
    reader.read(0, 9)
    assert reader.url is not None
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in reader.url[2] and "X-Amz-Credential=" in reader.url[2]


def test_a_url_that_expired_while_cached_is_signed_again_not_failed(
    emulation: LocalEmulation, cloudformation: CloudFormation
) -> None:
    # GIVEN a reader whose cached URL S3 now calls expired, though the reader thinks it fresh
    # (a sandbox frozen between invocations, say)
    content = os.urandom(BLOCK)
    bucket, key = emulation.stage_image(cloudformation.image(content))
    reader = RangeReader(aws.client("s3"), bucket, key, None)
    assert reader.read(0, 9) == content[:10]
    assert reader.url is not None
    signed_at, endpoint, target = reader.url
    reader.url = (signed_at, endpoint, target.replace("X-Amz-Expires=900", "X-Amz-Expires=1"))
    time.sleep(1.1)
    # WHEN it reads THEN S3's 403 makes it sign again, once, and the read succeeds
    assert reader.read(10, 19) == content[10:20]
    assert reader.url is not None and "X-Amz-Expires=900" in reader.url[2]
