"""Benchmark the data path against the strict local EBS in realistic mode, all in one run.

    python -m benchmarks.run [--rate 100] [--latency-ms 60] [--dense-mib 1024] [--large-gib 8]

EBS's per-snapshot limit (~1,000 PutSnapshotBlock/s) is scaled down to ``--rate`` for a 2-core
machine and reported as a fraction; every call takes ``--latency-ms``. Workers (WriteRange) run
in sandbox processes, as Lambda runs them, so their CPU time and peak RSS are their own; the
emulated AWS runs in this process. Prints one Markdown table of measurements with the issue's
targets, then the plan for large images at the real limit.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BLOCK = 524_288
REAL_LIMIT = 1000.0
SLOW_CALL_AT_REAL_LIMIT = 0.15  # seconds a PutSnapshotBlock takes from EC2, as upload-ami's figures imply
OUT = Path(__file__).resolve().parents[1] / "out" / "bench"
MIB = 1 << 20


@dataclass
class Upload:
    """One Create through the whole provider, as measured."""

    written: int
    skipped: int
    seconds_writing: float  # first to last accepted block
    sustained_rate: float  # blocks/s over the middle 80% of the write phase
    overall_rate: float  # blocks/s from the first to the last accepted block
    throttled: int
    put_calls: int
    worker_cpu_seconds: float  # sum over WriteRange invocations, handler only (no interpreter start)
    worker_peak_rss: int  # largest peak RSS of any sandbox
    completion_to_answer: float  # EC2 says completed -> CloudFormation has the answer
    ranges: int  # WriteRange invocations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--rate", type=float, default=100.0, help="emulated per-snapshot limit, calls/s")
    parser.add_argument("--latency-ms", type=float, default=60.0, help="emulated latency of one PutSnapshotBlock")
    parser.add_argument("--dense-mib", type=int, default=1024, help="size of the dense image")
    parser.add_argument("--large-gib", type=int, default=8, help="size of the large image for the memory check")
    args = parser.parse_args(argv)
    result_stream = sys.stdout
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sys.stdout = (OUT / "lambda-logs.jsonl").open("w")  # in-process handlers log to stdout, as in Lambda
    os.environ["WRITE_RATE_PER_SNAPSHOT"] = str(args.rate)
    try:
        table = run(args.rate, args.latency_ms / 1000, args.dense_mib, args.large_gib)
    finally:
        sys.stdout = result_stream
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; `make bench`, {time.monotonic() - started:.0f} s\n"
    )
    print(table)
    return 0


def run(rate: float, latency: float, dense_mib: int, large_gib: int) -> str:
    from ebs_snapshot_local.disk_image import build_repart_image
    from ebs_snapshot_local.emulation import LocalEmulation

    small_every = max(1, 16 // large_gib)
    images = {
        "dense": write_image(OUT / f"dense-{dense_mib}m.raw", dense_mib * MIB, every=1),
        "zero": write_image(OUT / "zero-512m.raw", 512 * MIB, every=0),
        "sparse": write_image(OUT / "sparse-512m.raw", 512 * MIB, every=5),  # 1 block in 5 has data: 80% zero
        "repart": build_repart_image(OUT / "repart.raw", size_mib=400),
        # The same data per range in both (both plan 16 ranges), so only the image's size differs;
        # at 1 in 16 the 1 GiB image had 8 data blocks a range and never filled the pipeline.
        "small": write_image(OUT / f"one-gib-1-in-{small_every}.raw", 1 << 30, every=small_every),
        "large": write_image(OUT / f"{large_gib}-gib.raw", large_gib << 30, every=16),
    }
    steal_before = cpu_times()
    log = (OUT / "sandbox-logs.jsonl").open("w")
    (OUT / "sandbox-stats.jsonl").unlink(missing_ok=True)
    with LocalEmulation() as emulation:
        emulation.strict.settings.put_rate_per_snapshot = rate
        emulation.strict.settings.put_latency_seconds = latency
        assert emulation.deployment is not None
        worker = emulation.deployment.functions["WriteRangeFunction"].name
        # Memory first, each in fresh sandboxes so a peak belongs to one image size.
        sandboxes = emulation.runtime.isolate_functions({worker}, log)
        small = measure(emulation, sandboxes, images["small"])
        sandboxes = emulation.runtime.isolate_functions({worker}, log)
        large = measure(emulation, sandboxes, images["large"])
        # The rest in warm sandboxes, as Lambda reuses them: the steady state, not cold starts.
        # This machine is shared and noisy (see steal below): the dense case runs three times.
        dense_runs = sorted((measure(emulation, sandboxes, images["dense"]) for _ in range(3)), key=lambda u: u.overall_rate)
        dense = dense_runs[1]  # the median
        # The same with calls as slow, relative to the scaled limit, as ~150 ms is at the real one:
        # now the calls in flight, not pacing, decide whether the limit is reached.
        emulation.strict.settings.put_latency_seconds = slow_latency = SLOW_CALL_AT_REAL_LIMIT * REAL_LIMIT / rate
        slow = measure(emulation, sandboxes, images["dense"])
        emulation.strict.settings.put_latency_seconds = latency
        zero = measure(emulation, sandboxes, images["zero"])
        sparse = measure(emulation, sandboxes, images["sparse"])
        repart = measure(emulation, sandboxes, images["repart"])
        # One range with no other worker running, as each Lambda worker has its own CPU.
        alone_ms = sorted(measure_worker_alone(emulation, sandboxes, images["dense"]) for _ in range(3))
        zero_alone_ms = sorted(measure_worker_alone(emulation, sandboxes, images["zero"]) for _ in range(3))
        naive = measure_naive(emulation, images["dense"], blocks=60)
    uploads = [small, large, *dense_runs, slow, zero, sparse, repart]
    steal_after = cpu_times()
    steal = (steal_after[0] - steal_before[0]) / max(1, steal_after[1] - steal_before[1])
    all_calls = sum(u.put_calls for u in uploads)
    all_throttled = sum(u.throttled for u in uploads)
    dense_ms = 1000 * dense.worker_cpu_seconds / max(1, dense.written)
    zero_ms = 1000 * zero.worker_cpu_seconds / max(1, zero.skipped)
    floors = measure_floors()
    worst_answer = max(u.completion_to_answer for u in uploads)
    rows = [
        (
            f"achieved rate, dense {dense_mib} MiB ({dense.written} blocks)",
            f"{dense.overall_rate:.0f} blocks/s first to last block = **{dense.overall_rate / rate:.0%}** of {rate:.0f}/s "
            f"(median of 3: {', '.join(f'{u.overall_rate / rate:.0%}' for u in dense_runs)}; "
            f"middle 80% of the time: {dense.sustained_rate / rate:.0%})",
            ">= 90% of the limit",
            verdict(dense.overall_rate >= 0.9 * rate),
        ),
        (
            f"achieved rate, same image, {slow_latency * 1000:.0f} ms a call "
            f"(= {SLOW_CALL_AT_REAL_LIMIT * 1000:.0f} ms at the real limit)",
            f"{slow.overall_rate:.0f} blocks/s first to last block = **{slow.overall_rate / rate:.0%}** of {rate:.0f}/s "
            f"(middle 80%: {slow.sustained_rate / rate:.0%})",
            ">= 90% of the limit",
            verdict(slow.overall_rate >= 0.9 * rate),
        ),
        (
            f"throttled calls, all {len(uploads)} uploads",
            f"{all_throttled} of {all_calls} ({all_throttled / max(1, all_calls):.1%}); every snapshot complete",
            "< 5%, no block lost",
            verdict(all_throttled < 0.05 * all_calls),
        ),
        (
            "worker CPU per written block (dense)",
            f"**{alone_ms[1]:.2f} ms** for one worker alone (median of 3: {ms_list(alone_ms)}); "
            f"{dense_ms:.2f} ms with all {default_fanout()} sharing 2 cores with the emulation. "
            f"Floor on this machine: {floors.dense_block:.2f} ms (SHA-256 {floors.sha256:.2f} + loopback send "
            f"{floors.send:.2f} + receive {floors.receive:.2f})",
            "< 1.5 ms",
            verdict(alone_ms[1] < 1.5),
        ),
        (
            "worker CPU per skipped zero block (all-zero 512 MiB)",
            f"**{zero_alone_ms[1]:.3f} ms** for one worker alone (median of 3: {ms_list(zero_alone_ms, 3)}); "
            f"{zero_ms:.3f} ms over the whole Create ({zero.skipped} blocks in {zero.ranges} ranges). "
            f"Floor: receiving 512 KiB over loopback, {floors.receive:.3f} ms",
            "< 0.1 ms",
            verdict(zero_alone_ms[1] < 0.1),
        ),
        (
            f"peak worker RSS, 1 GiB (1 block in {small_every} data) vs {large_gib} GiB (1 in 16): "
            f"{small.written // max(1, small.ranges)} vs {large.written // max(1, large.ranges)} data blocks a range",
            f"{small.worker_peak_rss / MIB:.0f} MiB vs {large.worker_peak_rss / MIB:.0f} MiB",
            "flat in image size (8x the image: under +25%)",
            verdict(large.worker_peak_rss <= small.worker_peak_rss * 1.25),
        ),
        (
            "snapshot completed -> CloudFormation answered",
            f"{worst_answer:.1f} s at most over {len(uploads)} uploads",
            "< 5 s",
            verdict(worst_answer < 5),
        ),
        (
            "80%-zero 512 MiB image",
            f"{sparse.written} written + {sparse.skipped} skipped in {sparse.seconds_writing:.1f} s; "
            f"{sparse.written / sparse.seconds_writing:.0f} written/s",
            "zero blocks cost no call",
            verdict(sparse.put_calls - sparse.throttled == sparse.written),
        ),
        (
            "systemd-repart OS image (400 MiB)",
            f"{repart.written} written + {repart.skipped} skipped in {repart.seconds_writing:.1f} s",
            "-",
            "",
        ),
        (
            "naive baseline: one thread, GET 512 KiB, hash, put",
            f"{naive:.1f} blocks/s; the provider on the dense image: {dense.overall_rate / naive:.1f}x",
            "-",
            "",
        ),
    ]
    lines = [
        f"CPU stolen by the host during the run: {steal:.1%} of this machine's time.",
        "",
        f"Emulated limit {rate:.0f} PutSnapshotBlock/s per snapshot, {latency * 1000:.0f} ms per call; "
        f"defaults ({default_fanout()}, paced).",
        "",
        "| measure | result | target | met |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        planning_table(),
    ]
    return "\n".join(lines)


def cpu_times() -> tuple[int, int]:
    """(steal, total) CPU ticks since boot, from /proc/stat: steal is time the host took."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def default_fanout() -> str:
    from uploader import config

    return f"{config.DEFAULT_MAX_WORKERS} workers x {config.WRITER_THREADS} threads"


def write_image(path: Path, size: int, every: int) -> Path:
    """``size`` bytes: random data in every ``every``-th block (1: dense), zeros elsewhere (a
    sparse file, so large images cost no disk)."""
    if path.exists() and path.stat().st_size == size:
        return path
    with path.open("wb") as handle:
        handle.truncate(size)
        if every:
            for index in range(0, size // BLOCK, every):
                handle.seek(index * BLOCK)
                handle.write(os.urandom(BLOCK))
    return path


def measure(emulation: Any, sandboxes: Any, image: Path) -> Upload:
    bucket, key = emulation.stage_image(image)
    strict = emulation.strict
    accepted_before, stats_before = len(strict.accepted_at), len(sandboxes.stats)
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
    stats = sandboxes.stats[stats_before:]
    snapshot_id = answer["PhysicalResourceId"]
    upload = Upload(
        written=answer["Data"]["BlocksWritten"],
        skipped=answer["Data"]["BlocksSkipped"],
        seconds_writing=(times[-1] - times[0]) if len(times) > 1 else 0.0,
        sustained_rate=sustained(times),
        overall_rate=(len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
        throttled=strict.calls.get("RateThrottled", 0) - calls_before.get("RateThrottled", 0),
        put_calls=strict.calls["PutSnapshotBlock"] - calls_before.get("PutSnapshotBlock", 0),
        worker_cpu_seconds=sum(s.cpu_seconds for s in stats),
        worker_peak_rss=max(s.peak_rss_bytes for s in stats),
        completion_to_answer=emulation.endpoint.received_at[event["RequestId"]] - strict.completed_at[snapshot_id],
        ranges=len(stats),
    )
    emulation.client("ec2").delete_snapshot(SnapshotId=snapshot_id)
    with (OUT / "sandbox-stats.jsonl").open("a") as record:  # per invocation, for a closer look
        for stat in stats:
            record.write(json.dumps({"image": image.name, **asdict(stat)}) + "\n")
    return upload


def sustained(times: list[float]) -> float:
    """Blocks/s over the middle 80% of the write phase: the rate held, without the start (where
    EBS's bucket is full and lets a burst through) and the last range's tail."""
    if len(times) < 10:
        return 0.0
    first, last = times[0], times[-1]
    low, high = first + 0.1 * (last - first), last - 0.1 * (last - first)
    return sum(1 for t in times if low <= t < high) / (high - low)


def measure_worker_alone(emulation: Any, sandboxes: Any, image: Path) -> float:
    """CPU ms per block (written, or skipped if none is written) of one WriteRange invocation
    in a warm sandbox, with no other worker running."""
    from uploader import plan
    from uploader.spec import Request, SnapshotSpec

    bucket, key = emulation.stage_image(image)
    name = "bench-alone-" + uuid.uuid4().hex[:8]
    stack = "arn:aws:cloudformation:eu-west-1:123456789012:stack/bench/1"
    request = Request("Create", name, stack, name, "http://127.0.0.1:9/", deadline=time.time() + 600)
    job = plan.run(
        SnapshotSpec(bucket, key),
        request,
        execution_name=name,
        work_bucket=emulation.deployment.work_bucket,
        provider_name=emulation.stack_name,
        max_workers=1,
        snapshot_write_rate=emulation.strict.settings.put_rate_per_snapshot,
    )
    spec = emulation.deployment.functions["WriteRangeFunction"]
    before = len(sandboxes.stats)
    body, errored = sandboxes.invoke(spec, {"job": job.to_dict(), "range": {"index": 0}})
    if errored:
        raise RuntimeError(f"worker alone: {body}")
    result = json.loads(body)
    cpu = sum(s.cpu_seconds for s in sandboxes.stats[before:])
    emulation.client("ec2").delete_snapshot(SnapshotId=job.snapshot_id)
    return 1000 * cpu / max(1, result["written"] or result["skipped"])


@dataclass
class Floors:
    """CPU ms per 512 KiB block of the work no uploader can avoid, measured on this machine."""

    sha256: float
    send: float  # over TCP on 127.0.0.1, as to the emulation
    receive: float

    @property
    def dense_block(self) -> float:
        return self.sha256 + self.send + self.receive


FLOOR_PEER = """
import socket, sys, time
role, port, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
connection = socket.create_connection(("127.0.0.1", port))
buffer = bytearray(524288) if role == "receive" else bytes(524288)
view = memoryview(buffer)
started = time.process_time()
for _ in range(blocks):
    if role == "send":
        connection.sendall(buffer)
    else:
        got = 0
        while got < len(buffer):
            got += connection.recv_into(view[got:])
print(time.process_time() - started)
"""


def measure_floors(blocks: int = 2000) -> Floors:
    """SHA-256 of a block, and the kernel's cost of sending or receiving it on loopback, each in
    a process of its own (its CPU only), into a reused buffer: a lower bound for any worker."""
    import socket
    import subprocess

    block = os.urandom(BLOCK)
    started = time.process_time()
    for _ in range(blocks // 4):
        hashlib.sha256(block).digest()
    sha = (time.process_time() - started) / (blocks // 4)
    peer_cpu = {}
    for role in ("send", "receive"):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            peer = subprocess.Popen(  # noqa: S603 - this interpreter, running the code above
                [sys.executable, "-c", FLOOR_PEER, role, str(listener.getsockname()[1]), str(blocks)], stdout=subprocess.PIPE
            )
            connection, _ = listener.accept()
            with connection:
                if role == "send":
                    sink = bytearray(1 << 20)
                    while connection.recv_into(sink):
                        pass
                else:
                    for _ in range(blocks):
                        connection.sendall(block)
            output, _ = peer.communicate(timeout=120)
            peer_cpu[role] = float(output) / blocks
    return Floors(sha256=1000 * sha, send=1000 * peer_cpu["send"], receive=1000 * peer_cpu["receive"])


def ms_list(values: list[float], digits: int = 2) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values)


def measure_naive(emulation: Any, image: Path, blocks: int) -> float:
    """A single-threaded boto3 loop, one block at a time, against the same endpoint."""
    bucket, key = emulation.stage_image(image)
    s3, ebs = emulation.client("s3"), emulation.client("ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=2, ClientToken=uuid.uuid4().hex)["SnapshotId"]
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
