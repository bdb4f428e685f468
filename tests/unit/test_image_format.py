"""Images that are not raw are refused by name, with the conversion that fixes them."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct

import pytest

from uploader.errors import NotRawImage
from uploader.image_format import VHD_FOOTER_BYTES, inspect

WHERE = "Image s3://b/k"


def vhd_footer(current_size: int, disk_type: int) -> bytes:
    footer = bytearray(VHD_FOOTER_BYTES)
    footer[0:8] = b"conectix"
    struct.pack_into(">Q", footer, 40, current_size)  # original size
    struct.pack_into(">Q", footer, 48, current_size)  # current size
    struct.pack_into(">I", footer, 60, disk_type)
    return bytes(footer)


def check(data: bytes) -> int:
    return inspect(data[:4096], data[-VHD_FOOTER_BYTES:], len(data), WHERE).raw_size


@pytest.mark.parametrize(
    ("data", "named", "remedy"),
    [
        (b"QFI\xfb\x00\x00\x00\x03" + bytes(600), "qcow2", "qemu-img convert -O raw"),
        (b"vhdxfile" + bytes(600), "VHDX", "qemu-img convert -O raw"),
        (b"KDMV\x01\x00\x00\x00" + bytes(600), "VMDK", "qemu-img convert -O raw"),
        (b"# Disk DescriptorFile\nversion=1\n" + bytes(600), "VMDK", "qemu-img convert -O raw"),
        (vhd_footer(1 << 20, 3) + bytes(600), "VHD (dynamic", "qemu-img convert -O raw"),
        (gzip.compress(bytes(10_000)), "gzip", "gunzip"),
        (lzma.compress(bytes(10_000)), "xz", "unxz"),
        (bz2.compress(bytes(10_000)), "bzip2", "bunzip2"),
        (b"\x28\xb5\x2f\xfd" + bytes(600), "zstd", "unzstd"),
        (
            b"<<< QEMU VM Virtual Disk Image >>>\n".ljust(0x40, b"\0") + b"\x7f\x10\xda\xbe" + bytes(600),
            "VDI",
            "qemu-img convert -O raw",
        ),
        (b"QED\x00" + bytes(600), "QED", "qemu-img convert -O raw"),
    ],
)
def test_container_or_compressed_image_is_refused_naming_format_and_fix(data: bytes, named: str, remedy: str) -> None:
    with pytest.raises(NotRawImage, match=named.replace("(", r"\(")) as raised:
        check(data)
    assert remedy in str(raised.value) and WHERE in str(raised.value)


def test_raw_image_is_uploaded_whole() -> None:
    data = bytes(512) + b"\x55\xaa" + os.urandom(5000)
    assert check(data) == len(data)


def test_fixed_vhd_footer_is_dropped_and_the_raw_disk_uploaded() -> None:
    raw = os.urandom(3 << 20)
    assert check(raw + vhd_footer(len(raw), 2)) == len(raw)


def test_vhd_footer_that_does_not_fit_the_object_is_refused() -> None:
    raw = os.urandom(1 << 20)
    with pytest.raises(NotRawImage, match="VHD footer"):
        check(raw + vhd_footer(len(raw) + 4096, 2))


def test_tiny_raw_image_is_fine() -> None:
    assert inspect(b"\x01", b"", 1, WHERE).raw_size == 1
