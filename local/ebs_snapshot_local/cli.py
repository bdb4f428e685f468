"""``ebs-snapshot-local``: run the provider end to end on this machine, no AWS account needed.

    ebs-snapshot-local demo [--image PATH]         build (or take) a raw image, Create, verify, Delete
    ebs-snapshot-local invoke --event FILE [--image PATH]
    ebs-snapshot-local invoke --events FILE1 FILE2 ... [--image PATH]

The Lambda functions' JSON logs go to a file (``--log-file``) or, with ``--verbose``, to stderr;
stdout carries only the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EVENTS = PROJECT_ROOT / "events"
BLOCK_SIZE = 524_288


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ebs-snapshot-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-file", type=Path, default=PROJECT_ROOT / "out" / "lambda-logs.jsonl")
    parser.add_argument("--verbose", action="store_true", help="Lambda logs to stderr instead of --log-file")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="the main job on a real disk image, verified byte for byte")
    demo.add_argument("--image", type=Path, help="a raw image of your own (default: build one with systemd-repart)")
    demo.add_argument("--size-mib", type=int, default=400, help="size of the built image (default 400)")
    invoke = commands.add_parser("invoke", help="send CloudFormation events to the provider, print the responses")
    which = invoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--event", type=Path)
    which.add_argument("--events", type=Path, nargs="+")
    invoke.add_argument("--image", type=Path, help="stage this image and point ImageBucket/ImageKey at it")
    args = parser.parse_args(argv)

    result_stream = sys.stdout
    # Handlers log to stdout, as in Lambda; keep stdout for results. Done before any handler import.
    args.log_file.parent.mkdir(parents=True, exist_ok=True)
    log_stream: TextIO = sys.stderr if args.verbose else args.log_file.open("w")
    sys.stdout = log_stream
    try:
        if args.command == "demo":
            return run_demo(args.image, args.size_mib, result_stream, args.log_file if not args.verbose else None)
        events = [args.event] if args.event else args.events
        responses = run_events([json.loads(path.read_text()) for path in events], args.image)
        output = responses[0] if args.event else responses
        print(json.dumps(output, indent=2), file=result_stream)
        return 0 if all(r.get("Status") == "SUCCESS" for r in responses) else 1
    finally:
        sys.stdout = result_stream


def run_events(events: list[dict[str, Any]], image: Path | None) -> list[dict[str, Any]]:
    """Send events in order to one emulation, carrying ids forward as CloudFormation does:
    each Update/Delete gets the physical id and properties the previous answer left, and an
    Update that replaced the snapshot is followed by CloudFormation's Delete of the old one
    (its answer is in the list too)."""
    from ebs_snapshot_local.emulation import LocalEmulation

    responses: list[dict[str, Any]] = []
    with LocalEmulation() as emulation:
        staged = emulation.stage_image(image) if image else None
        current: dict[str, tuple[str, dict[str, Any]]] = {}  # logical id -> (physical id, properties)
        for event in events:
            event = json.loads(json.dumps(event))
            event["RequestId"] = str(uuid.uuid4())
            if staged:
                event["ResourceProperties"].update(ImageBucket=staged[0], ImageKey=staged[1])
            logical_id = event["LogicalResourceId"]
            if event["RequestType"] != "Create" and logical_id in current:
                event["PhysicalResourceId"], previous = current[logical_id]
                if event["RequestType"] == "Update":
                    event["OldResourceProperties"] = previous
            response = emulation.send(event)
            responses.append(response)
            emulation.wait_for_executions()
            if response["Status"] != "SUCCESS" or event["RequestType"] == "Delete":
                continue
            replaced = current.get(logical_id)
            current[logical_id] = (response["PhysicalResourceId"], event["ResourceProperties"])
            if replaced and replaced[0] != response["PhysicalResourceId"]:
                # A new physical id means replacement: CloudFormation deletes the old one in cleanup.
                cleanup = {**event, "RequestType": "Delete", "RequestId": str(uuid.uuid4())}
                cleanup.update(PhysicalResourceId=replaced[0], ResourceProperties=replaced[1])
                cleanup.pop("OldResourceProperties", None)
                responses.append(emulation.send(cleanup))
    return responses


def run_demo(image: Path | None, size_mib: int, out: TextIO, log_file: Path | None) -> int:
    from ebs_snapshot_local.disk_image import build_repart_image
    from ebs_snapshot_local.emulation import LocalEmulation
    from ebs_snapshot_local.readback import compare_snapshot_with_image

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if image is None:
        image = PROJECT_ROOT / "out" / "demo-repart.raw"
        image.parent.mkdir(parents=True, exist_ok=True)
        say(f"Building a {size_mib} MiB GPT image with systemd-repart (ESP + ext4 root with real files) ...")
        build_repart_image(image, size_mib=size_mib)
    image_size = image.stat().st_size
    say(f"Image: {image} ({image_size:,} bytes, {-(-image_size // BLOCK_SIZE):,} blocks of 512 KiB)")
    if log_file:
        say(f"Lambda logs: {log_file}")

    failures: list[str] = []
    with LocalEmulation() as emulation:
        bucket, key = emulation.stage_image(image)
        say(f"Staged as a CDK file asset: s3://{bucket}/{key}")
        create = json.loads((EVENTS / "create.json").read_text())
        create["RequestId"] = str(uuid.uuid4())
        create["ResourceProperties"].update(ImageBucket=bucket, ImageKey=key)
        started = time.monotonic()
        response = emulation.send(create)
        elapsed = time.monotonic() - started
        if response["Status"] != "SUCCESS":
            say(f"Create FAILED: {response.get('Reason')}")
            return 1
        data = response["Data"]
        snapshot_id = response["PhysicalResourceId"]
        say(f"Snapshot:       {snapshot_id} (VolumeSize {data['VolumeSize']} GiB)")
        written, skipped, total = data["BlocksWritten"], data["BlocksSkipped"], data["BlockCount"]
        say(f"Blocks:         {written:,} written, {skipped:,} skipped as all-zero, of {total:,}")
        say(f"Checksum:       {data['Checksum']} (LINEAR, accepted by CompleteSnapshot)")
        say(f"Create -> SUCCESS in {elapsed:.1f} s: {image_size / elapsed / 2**20:.1f} MiB/s end to end")

        described = emulation.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        comparison = compare_snapshot_with_image(emulation.client("ebs"), snapshot_id, image, encrypted=described["Encrypted"])
        if comparison.identical:
            say(f"Read back:      {comparison.blocks_compared:,} blocks compared, identical to the image")
        else:
            failures.append(f"{len(comparison.mismatched)} blocks differ, first {comparison.mismatched[:10]}")

        delete = json.loads((EVENTS / "delete.json").read_text())
        delete.update(RequestId=str(uuid.uuid4()), PhysicalResourceId=snapshot_id)
        delete["ResourceProperties"].update(ImageBucket=bucket, ImageKey=key)
        answer = emulation.send(delete)
        remaining = [s["SnapshotId"] for s in emulation.snapshots()]
        if answer["Status"] != "SUCCESS" or remaining:
            failures.append(f"Delete answered {answer['Status']} ({answer.get('Reason')}); snapshots left: {remaining[:10]}")
        else:
            say("Delete -> SUCCESS; no snapshot left behind")
    if failures:
        say("VERDICT: FAIL - " + "; ".join(failures))
        return 1
    say("VERDICT: PASS - the snapshot holds the image byte for byte")
    return 0


if __name__ == "__main__":
    sys.exit(main())
