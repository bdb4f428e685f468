"""Block and volume arithmetic of the EBS direct APIs: pure functions, no AWS calls.

Facts (shared/reference/ebs-direct-api.md): blocks are 512 KiB, volumes are 1 to 65,536 GiB,
a GiB holds 2,048 blocks, and a block index at or past VolumeSize x 2048 is invalid.
"""

from __future__ import annotations

BLOCK_SIZE = 524_288
GIB = 1 << 30
BLOCKS_PER_GIB = GIB // BLOCK_SIZE
MIN_VOLUME_SIZE_GIB = 1
MAX_VOLUME_SIZE_GIB = 65_536


def blocks_spanned(image_size_bytes: int) -> int:
    """Number of 512 KiB blocks an image of ``image_size_bytes`` touches (last one partial)."""
    return -(-image_size_bytes // BLOCK_SIZE)


def smallest_volume_gib(image_size_bytes: int) -> int:
    """Smallest whole-GiB volume that holds the image, at least 1 GiB."""
    return max(MIN_VOLUME_SIZE_GIB, -(-image_size_bytes // GIB))
