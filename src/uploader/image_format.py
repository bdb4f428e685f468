"""Recognise disk images that are not raw, so their container bytes never become a snapshot.

Pure functions over the first and last bytes of the object (Plan reads them with two ranged
GETs). qcow2, QED, VHD, VHDX, VMDK, VDI and gzip/xz/zstd/bzip2 are rejected with the command that
converts them. A fixed VHD is a raw image followed by a 512-byte footer: that footer is dropped
and the raw part uploaded, exactly what ``qemu-img convert -O raw`` would produce.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from uploader.errors import NotRawImage

HEAD_BYTES = 4096
VHD_FOOTER_BYTES = 512
VHD_COOKIE = b"conectix"
VHD_FIXED = 2

CONVERT = "qemu-img convert -O raw {name} image.raw"
DECOMPRESS = "decompress it first ({tool}), then upload the raw image"

# (magic, offset, format name, what to do)
SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"QFI\xfb", 0, "qcow2", CONVERT.format(name="image.qcow2")),
    (b"vhdxfile", 0, "VHDX", CONVERT.format(name="image.vhdx")),
    (b"KDMV", 0, "VMDK (sparse)", CONVERT.format(name="image.vmdk")),
    (b"# Disk DescriptorFile", 0, "VMDK (descriptor)", CONVERT.format(name="image.vmdk")),
    (b"\x7f\x10\xda\xbe", 0x40, "VDI", CONVERT.format(name="image.vdi")),
    (b"QED\x00", 0, "QED", CONVERT.format(name="image.qed")),
    (VHD_COOKIE, 0, "VHD (dynamic or differencing)", CONVERT.format(name="image.vhd")),
    (b"\x1f\x8b\x08", 0, "gzip-compressed", DECOMPRESS.format(tool="gunzip")),
    (b"\xfd7zXZ\x00", 0, "xz-compressed", DECOMPRESS.format(tool="unxz")),
    (b"\x28\xb5\x2f\xfd", 0, "zstd-compressed", DECOMPRESS.format(tool="unzstd")),
)


@dataclass(frozen=True)
class Inspection:
    """What Plan uploads: the first ``raw_size`` bytes of the object."""

    raw_size: int
    note: str | None = None  # e.g. "fixed VHD footer dropped"


def inspect(head: bytes, tail: bytes, object_size: int, where: str) -> Inspection:
    """Check the object's first bytes (up to ``HEAD_BYTES``) and last 512; raise ``NotRawImage``
    naming the format and the conversion, or say how many bytes are the raw image."""
    for magic, offset, name, remedy in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            raise NotRawImage(f"{where} is a {name} image, not a raw disk image: {remedy}")
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == b"\x31\x41\x59\x26\x53\x59":
        raise NotRawImage(f"{where} is a bzip2-compressed image, not a raw disk image: {DECOMPRESS.format(tool='bunzip2')}")
    if object_size > VHD_FOOTER_BYTES and tail[:8] == VHD_COOKIE:
        disk_type = struct.unpack_from(">I", tail, 60)[0]
        current_size = struct.unpack_from(">Q", tail, 48)[0]
        if disk_type == VHD_FIXED and current_size == object_size - VHD_FOOTER_BYTES:
            return Inspection(object_size - VHD_FOOTER_BYTES, "fixed VHD footer dropped: the raw disk is uploaded")
        raise NotRawImage(
            f"{where} ends with a VHD footer that does not describe a fixed VHD of this size: {CONVERT.format(name='image.vhd')}"
        )
    return Inspection(object_size)
