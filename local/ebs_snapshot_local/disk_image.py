"""Build a real GPT disk image with systemd-repart: an ESP and an ext4 root with real files.

This is how NixOS (systemd-repart) and mkosi build the images users upload. The image is
deliberately partly empty, so the zero-block path is exercised as it is in practice.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import uuid
from pathlib import Path

# Real, varied content from this machine: text, binaries, small and large files.
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
SECTOR = 512
ROOT_CONTENT = ("/usr/share/zoneinfo", "/usr/lib/python3.11", "/etc")


class ImageToolMissing(RuntimeError):
    """systemd-repart (or a mkfs it needs) is not installed."""


def build_repart_image(path: Path, *, size_mib: int = 400) -> Path:
    """Write a ``size_mib`` GPT image to ``path``: a 64 MiB ESP (vfat) and an ext4 root."""
    for tool in ("systemd-repart", "mkfs.ext4", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            raise ImageToolMissing(
                f"{tool} is required to build the demo image (Debian: apt-get install systemd e2fsprogs dosfstools mtools); "
                "or pass --image PATH with a raw image of your own"
            )
    with tempfile.TemporaryDirectory(prefix="repart-") as work:
        definitions = Path(work, "repart.d")
        definitions.mkdir()
        # systemd 252 fills vfat by mounting it, which a sandbox may not allow; mtools writes
        # the ESP's files afterwards instead (see add_esp_files).
        (definitions / "10-esp.conf").write_text("[Partition]\nType=esp\nFormat=vfat\nSizeMinBytes=64M\nSizeMaxBytes=64M\n")
        copies = "\n".join(f"CopyFiles={source}:{source}" for source in ROOT_CONTENT if Path(source).exists())
        (definitions / "20-root.conf").write_text(f"[Partition]\nType=root\nFormat=ext4\n{copies}\nSizeMinBytes=256M\n")
        path.unlink(missing_ok=True)
        result = subprocess.run(
            [
                "systemd-repart",
                f"--definitions={definitions}",
                "--empty=create",
                f"--size={size_mib}M",
                "--dry-run=no",
                "--no-pager",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"systemd-repart failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        add_esp_files(path, Path(work))
    return path


def add_esp_files(image: Path, work: Path) -> None:
    """Copy a boot-loader-shaped tree into the image's ESP with mtools (no mount needed)."""
    offset = esp_offset(image)
    source = work / "BOOTAA64.EFI"
    source.write_bytes(b"MZ" + bytes(range(256)) * 4096)  # a 1 MiB stand-in for a boot loader
    target = f"{image}@@{offset}"
    for command in (
        ["mmd", "-i", target, "::/EFI", "::/EFI/BOOT"],
        ["mcopy", "-i", target, str(source), "::/EFI/BOOT/BOOTAA64.EFI"],
    ):
        subprocess.run(command, capture_output=True, text=True, check=True)


def esp_offset(image: Path) -> int:
    """Byte offset of the ESP, read from the GPT (header at LBA 1, entries where it says)."""
    with image.open("rb") as disk:
        disk.seek(SECTOR)
        header = disk.read(92)
        if header[:8] != b"EFI PART":
            raise RuntimeError(f"{image} has no GPT header")
        entries_lba, entry_count, entry_size = struct.unpack_from("<QII", header, 72)
        disk.seek(entries_lba * SECTOR)
        for _ in range(entry_count):
            entry = disk.read(entry_size)
            if uuid.UUID(bytes_le=entry[:16]) == ESP_TYPE:
                return int(struct.unpack_from("<Q", entry, 32)[0]) * SECTOR
    raise RuntimeError(f"{image} has no EFI System Partition")
