"""Read a snapshot back block by block and compare it with the image it came from.

Uses the EBS direct read APIs (ListSnapshotBlocks, GetSnapshotBlock) the way a restore would:
listed blocks are read and checked against their checksum; unlisted blocks read as zeros.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK_SIZE = 524_288


@dataclass
class Comparison:
    blocks_compared: int = 0
    blocks_listed: int = 0
    mismatched: list[int] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.mismatched


def compare_snapshot_with_image(ebs: Any, snapshot_id: str, image: Path, *, encrypted: bool = False) -> Comparison:
    """Compare every block of the image's span (and every listed block past it) with the snapshot.

    An unwritten block reads as zeros, except in an ``encrypted`` snapshot, where it reads as
    whatever the encryption makes of nothing (random bytes here), as a restored volume would.
    """
    listed: dict[int, str] = {}
    kwargs: dict[str, Any] = {"SnapshotId": snapshot_id, "MaxResults": 10_000}
    while True:
        page = ebs.list_snapshot_blocks(**kwargs)
        if page["BlockSize"] != BLOCK_SIZE:
            raise AssertionError(f"BlockSize is {page['BlockSize']}, expected {BLOCK_SIZE}")
        listed.update({block["BlockIndex"]: block["BlockToken"] for block in page["Blocks"]})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]

    comparison = Comparison(blocks_listed=len(listed))
    zero = bytes(BLOCK_SIZE)
    image_blocks = -(-image.stat().st_size // BLOCK_SIZE)
    with image.open("rb") as handle:
        for index in range(max(image_blocks, max(listed, default=-1) + 1)):
            expected = handle.read(BLOCK_SIZE).ljust(BLOCK_SIZE, b"\0")
            if index in listed:
                answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=listed[index])
                actual = answer["BlockData"].read()
                if answer["Checksum"] != base64.b64encode(hashlib.sha256(actual).digest()).decode():
                    comparison.mismatched.append(index)
                    continue
            else:
                actual = os.urandom(BLOCK_SIZE) if encrypted else zero
            comparison.blocks_compared += 1
            if actual != expected:
                comparison.mismatched.append(index)
    return comparison
