"""Benchmark the data path against the strict local EBS in realistic mode, all in one run.

    python -m benchmarks.run [--rate 200] [--latency-ms 60] [--size-mib 256]

EBS's per-snapshot limit (~1,000 PutSnapshotBlock/s) is scaled down to ``--rate`` for a 2-core
machine and reported as a fraction; every call takes ``--latency-ms``. Prints one Markdown table:
achieved rate and throttled share per image kind, a naive single-threaded baseline on the same
endpoint, and the plan for large images at the real limit. Worker CPU and RSS are not measured
yet (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

BLOCK = 524_288
REAL_LIMIT = 1000.0
OUT = Path(__file__).resolve().parents[1] / "out" / "bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--rate", type=float, default=200.0, help="emulated per-snapshot limit, calls/s")
    parser.add_argument("--latency-ms", type=float, default=60.0, help="emulated latency of one PutSnapshotBlock")
    parser.add_argument("--size-mib", type=int, default=256, help="size of the dense and sparse images")
    args = parser.parse_args(argv)
    result_stream = sys.stdout
    OUT.mkdir(parents=True, exist_ok=True)
    sys.stdout = (OUT / "lambda-logs.jsonl").open("w")  # handlers log to stdout, as in Lambda
    os.environ["WRITE_RATE_PER_SNAPSHOT"] = str(args.rate)
    try:
        table = run(args.rate, args.latency_ms / 1000, args.size_mib)
    finally:
        sys.stdout = result_stream
    print(table)
    return 0


def run(rate: float, latency: float, size_mib: int) -> str:
    from ebs_snapshot_local.disk_image import build_repart_image
    from ebs_snapshot_local.emulation import LocalEmulation

    images = {
        "dense random": write_image(OUT / "dense.raw", size_mib, zero_share=0.0),
        "80% zero blocks": write_image(OUT / "sparse.raw", size_mib, zero_share=0.8),
        "systemd-repart OS image": build_repart_image(OUT / "repart.raw", size_mib=400),
    }
    rows = []
    with LocalEmulation() as emulation:
        emulation.strict.settings.put_rate_per_snapshot = rate
        emulation.strict.settings.put_latency_seconds = latency
        for kind, path in images.items():
            rows.append((kind, *measure_create(emulation, path, rate)))
        naive_rate = measure_naive(emulation, images["dense random"], blocks=60)
    dense_rate = rows[0][3]
    lines = [
        f"Emulated limit {rate:.0f} PutSnapshotBlock/s per snapshot, {latency * 1000:.0f} ms per call; "
        f"defaults (4 workers x 16 threads, paced).",
        "",
        "| image | blocks written / skipped | throttled calls | achieved blocks/s | of the limit |",
        "|---|---|---|---|---|",
    ]
    for kind, written, skipped, achieved, throttled, calls in rows:
        share = f"{throttled / calls:.1%}" if calls else "-"
        lines.append(
            f"| {kind} | {written} / {skipped} | {throttled} of {calls} ({share}) | {achieved:.0f} | {achieved / rate:.0%} |"
        )
    lines += [
        "",
        f"Naive baseline (one thread: GET 512 KiB, hash, put, repeat), same endpoint: {naive_rate:.1f} blocks/s; "
        f"the provider on the dense image: {dense_rate / naive_rate:.1f}x that.",
        "",
        planning_table(),
    ]
    return "\n".join(lines)


def write_image(path: Path, size_mib: int, zero_share: float) -> Path:
    blocks = size_mib * 2
    with path.open("wb") as handle:
        for index in range(blocks):
            zero = (index * 7919 % 100) < zero_share * 100  # spread, deterministic
            handle.write(bytes(BLOCK) if zero else os.urandom(BLOCK))
    return path


def measure_create(emulation: Any, image: Path, rate: float) -> tuple[int, int, float, int, int]:
    """(written, skipped, achieved blocks/s over the write phase, throttled calls, all calls)."""
    bucket, key = emulation.stage_image(image)
    strict = emulation.strict
    accepted_before = len(strict.accepted_at)
    calls_before = dict(strict.calls)
    event = {
        "RequestType": "Create",
        "RequestId": str(uuid.uuid4()),
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/bench/1",
        "LogicalResourceId": "Bench" + uuid.uuid4().hex[:8],
        "ResourceType": "Custom::EbsSnapshot",
        "ResourceProperties": {"ImageBucket": bucket, "ImageKey": key},
    }
    answer = emulation.send(event, timeout_seconds=1800)
    if answer["Status"] != "SUCCESS":
        raise RuntimeError(f"{image.name}: {answer['Reason']}")
    times = strict.accepted_at[accepted_before:]
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    calls = strict.calls["PutSnapshotBlock"] - calls_before.get("PutSnapshotBlock", 0)
    throttled = strict.calls.get("RateThrottled", 0) - calls_before.get("RateThrottled", 0)
    data = answer["Data"]
    return data["BlocksWritten"], data["BlocksSkipped"], achieved, throttled, calls


def measure_naive(emulation: Any, image: Path, blocks: int) -> float:
    """A single-threaded boto3 loop, one block at a time, against the same endpoint."""
    import base64

    bucket, key = emulation.stage_image(image)
    s3, ebs = emulation.client("s3"), emulation.client("ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=1, ClientToken=uuid.uuid4().hex)["SnapshotId"]
    started = time.monotonic()
    for index in range(blocks):
        data = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={index * BLOCK}-{(index + 1) * BLOCK - 1}")["Body"].read()
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        ebs.put_snapshot_block(
            SnapshotId=snapshot_id,
            BlockIndex=index,
            BlockData=data,
            DataLength=BLOCK,
            Checksum=checksum,
            ChecksumAlgorithm="SHA256",
        )
    elapsed = time.monotonic() - started
    emulation.client("ec2").delete_snapshot(SnapshotId=snapshot_id)
    return blocks / elapsed


def planning_table() -> str:
    from uploader import config, geometry, plan

    lines = [
        f"Plan at the real limit ({REAL_LIMIT:.0f} blocks/s per snapshot), dense images, "
        f"MaxWorkers {config.DEFAULT_MAX_WORKERS}:",
        "",
        "| image | blocks | ranges x blocks | workers | write time at the limit | one range at a worker's share "
        "| fits CloudFormation's hour |",
        "|---|---|---|---|---|---|---|",
    ]
    for gib in (1, 8, 64, 512, 2048):
        blocks = gib * geometry.BLOCKS_PER_GIB
        range_blocks, ranges = plan.plan_ranges(blocks, config.DEFAULT_MAX_WORKERS)
        workers = min(config.DEFAULT_MAX_WORKERS, ranges)
        total = blocks / REAL_LIMIT
        per_range = range_blocks / (REAL_LIMIT / workers)
        lines.append(
            f"| {gib} GiB | {blocks:,} | {ranges:,} x {range_blocks:,} | {workers} | {duration(total)} | "
            f"{duration(per_range)} (Lambda limit 15 min) | {'yes' if total < 55 * 60 else 'no: fails at the deadline'} |"
        )
    return "\n".join(lines)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    sys.exit(main())
