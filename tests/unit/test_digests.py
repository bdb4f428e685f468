"""Range reports and the LINEAR aggregate checksum."""

from __future__ import annotations

import base64
import hashlib

import pytest

from uploader import digests, geometry

ZERO_BLOCK_SHA256_B64 = "B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE="  # shared/reference/ebs-direct-api.md


def test_block_checksum_of_zero_block_matches_reference() -> None:
    assert digests.block_checksum_b64(hashlib.sha256(bytes(geometry.BLOCK_SIZE)).digest()) == ZERO_BLOCK_SHA256_B64


def test_linear_checksum_is_sha256_of_concatenated_raw_digests() -> None:
    blocks = [b"\x01" * geometry.BLOCK_SIZE, b"\x02" * geometry.BLOCK_SIZE]
    raw = [hashlib.sha256(b).digest() for b in blocks]
    expected = base64.b64encode(hashlib.sha256(raw[0] + raw[1]).digest()).decode()
    assert digests.linear_checksum(raw) == expected


def test_linear_checksum_fed_in_pieces_equals_in_one_go() -> None:
    raw = [hashlib.sha256(bytes([i])).digest() for i in range(10)]
    pieces = digests.LinearChecksum()
    pieces.add(raw[:3])
    pieces.add(raw[3:])
    assert pieces.value() == digests.linear_checksum(raw) and pieces.block_count == 10


def test_report_round_trips() -> None:
    report = digests.RangeReport(64, 64, [(64, b"a" * 32), (100, b"b" * 32)])
    decoded = digests.decode(digests.encode(report))
    assert decoded == report and decoded.skipped == 62


@pytest.mark.parametrize(
    "written",
    [[(100, b"a" * 32), (90, b"b" * 32)], [(63, b"a" * 32)], [(128, b"a" * 32)], [(70, b"a" * 32), (70, b"a" * 32)]],
)
def test_report_out_of_order_or_outside_its_range_is_rejected(written: list[tuple[int, bytes]]) -> None:
    with pytest.raises(ValueError, match="block"):
        digests.decode(digests.encode(digests.RangeReport(64, 64, written)))


def test_truncated_report_is_rejected() -> None:
    data = digests.encode(digests.RangeReport(0, 8, [(1, b"a" * 32)]))
    with pytest.raises(ValueError, match="length"):
        digests.decode(data[:-1])
