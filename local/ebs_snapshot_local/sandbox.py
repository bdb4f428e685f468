"""Lambda sandboxes as separate processes, for measuring a worker as Lambda runs it.

In-process handlers share one interpreter (and one GIL) with the emulated AWS, so their CPU
time and memory cannot be told apart from the emulation's. Functions named in
``LocalLambdaRuntime.isolate`` run here instead: each concurrent invocation gets a warm child
process (started once, reused, as Lambda reuses a sandbox), which reports the process CPU
time the handler used and the process's peak RSS with every answer.

The child speaks one JSON line per invocation over its stdin/stdout; the handler's own logs
go to the child's stderr, which the parent points at a file or its own stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import IO, Any

from ebs_snapshot_local.lambda_runtime import FunctionSpec, run_handler


@dataclass(frozen=True)
class InvocationStats:
    """What one isolated invocation cost its sandbox process."""

    function_name: str
    cpu_seconds: float  # process CPU (user + system) of the handler call, all threads
    peak_rss_bytes: int  # the sandbox process's peak resident memory so far
    wall_seconds: float
    errored: bool


class Sandbox:
    """One child process running invocations one at a time."""

    def __init__(self, log: IO[str] | None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ebs_snapshot_local.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log if log is not None else None,
            text=True,
            env=dict(os.environ),
        )

    def invoke(self, spec: FunctionSpec, event: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {"spec": asdict(spec), "event": event}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"Sandbox for {spec.name} exited with code {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class SandboxPool:
    """Warm sandboxes per function; a busy one is never shared, as in Lambda."""

    def __init__(self, log: IO[str] | None = None) -> None:
        self.log = log
        self.lock = threading.Lock()
        self.idle: dict[str, list[Sandbox]] = {}
        self.all: list[Sandbox] = []
        self.stats: list[InvocationStats] = []

    def invoke(self, spec: FunctionSpec, event: Any) -> tuple[str, bool]:
        with self.lock:
            idle = self.idle.setdefault(spec.name, [])
            sandbox = idle.pop() if idle else None
        if sandbox is None:
            sandbox = Sandbox(self.log)
            with self.lock:
                self.all.append(sandbox)
        answer = sandbox.invoke(spec, event)
        with self.lock:
            self.idle[spec.name].append(sandbox)
            self.stats.append(
                InvocationStats(
                    function_name=spec.name,
                    cpu_seconds=float(answer["cpu_seconds"]),
                    peak_rss_bytes=int(answer["peak_rss_bytes"]),
                    wall_seconds=float(answer["wall_seconds"]),
                    errored=bool(answer["errored"]),
                )
            )
        return str(answer["body"]), bool(answer["errored"])

    def close(self) -> None:
        """Stop every sandbox (the next invocation starts a fresh one, with a fresh peak RSS)."""
        with self.lock:
            sandboxes, self.all, self.idle = self.all, [], {}
        for sandbox in sandboxes:
            sandbox.close()


def serve(requests: IO[str], answers: IO[str]) -> None:
    """The child's loop: one request line in, one answer line out, until stdin closes."""
    for line in requests:
        request = json.loads(line)
        spec = FunctionSpec(**request["spec"])
        importlib.import_module(spec.handler.rpartition(".")[0])  # a cold start is not the handler's cost
        cpu_before, wall_before = time.process_time(), time.monotonic()
        body, errored = run_handler(spec, request["event"])
        answer = {
            "body": body,
            "errored": errored,
            "cpu_seconds": time.process_time() - cpu_before,
            "wall_seconds": time.monotonic() - wall_before,
            "peak_rss_bytes": peak_rss_bytes(),
        }
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def peak_rss_bytes() -> int:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries that across exec, so a
    sandbox forked from a large parent would report the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    # Keep the protocol on the real stdout; everything the handler prints goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
