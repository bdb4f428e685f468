"""Per-range digest reports and the LINEAR aggregate checksum: pure functions, no AWS calls.

A worker stores one report per range in the work bucket (kept out of Step Functions state,
which holds 256 KiB at most); Finish reads them back in range order to build the aggregate.

Report layout (big-endian): magic, first block, block count, written count, then one record
per written block: block index (8 bytes) and its raw SHA-256 digest (32 bytes), ascending.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

MAGIC = b"EBSRNG01"
HEADER = struct.Struct(">8sQQQ")
RECORD = struct.Struct(">Q32s")


@dataclass(frozen=True)
class RangeReport:
    """What one worker wrote for one range."""

    first_block: int
    block_count: int
    written: list[tuple[int, bytes]]  # (block index, raw digest), ascending

    @property
    def skipped(self) -> int:
        return self.block_count - len(self.written)


def encode(report: RangeReport) -> bytes:
    parts = [HEADER.pack(MAGIC, report.first_block, report.block_count, len(report.written))]
    parts.extend(RECORD.pack(index, digest) for index, digest in report.written)
    return b"".join(parts)


def decode(data: bytes) -> RangeReport:
    """Parse a report; raises ValueError on anything malformed or out of order."""
    if len(data) < HEADER.size:
        raise ValueError("report shorter than its header")
    magic, first_block, block_count, written_count = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("report has the wrong magic")
    if len(data) != HEADER.size + written_count * RECORD.size:
        raise ValueError(f"report length {len(data)} does not match its {written_count} records")
    written = [rec for rec in RECORD.iter_unpack(data[HEADER.size :])]
    previous = first_block - 1
    for index, _ in written:
        if not previous < index < first_block + block_count:
            raise ValueError(f"block {index} is out of order or outside blocks {first_block}..{first_block + block_count - 1}")
        previous = index
    return RangeReport(first_block, block_count, written)


def block_checksum_b64(digest: bytes) -> str:
    """A block's raw SHA-256 digest in the base64 form PutSnapshotBlock's Checksum wants."""
    return base64.b64encode(digest).decode("ascii")


class LinearChecksum:
    """SHA-256 over the written blocks' raw digests in ascending block order, base64.

    This is the LINEAR aggregation in production use (coldsnap, NixOS upload-ami); unwritten
    blocks take no part. Fed range by range, so memory stays flat.
    """

    def __init__(self) -> None:
        self._aggregate = hashlib.sha256()
        self.block_count = 0

    def add(self, digests: Iterable[bytes]) -> None:
        for digest in digests:
            self._aggregate.update(digest)
            self.block_count += 1

    def value(self) -> str:
        return base64.b64encode(self._aggregate.digest()).decode("ascii")


def linear_checksum(digests: Iterable[bytes]) -> str:
    checksum = LinearChecksum()
    checksum.add(digests)
    return checksum.value()
