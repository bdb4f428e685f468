"""Runs the project's Lambda handlers in-process when moto is asked to invoke a function.

moto cannot run Lambda code without Docker; replacing ``LambdaFunction._invoke_lambda`` lets
Step Functions and the CloudFormation stand-in invoke the real handler named in template.yaml.
Errors come back the way Lambda reports them (errorType = exception class name), so the
state machine's Retry and Catch see the same error names as in AWS. Functions listed in
``isolate`` run in sandbox processes instead (``sandbox``), where their CPU and memory show.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from moto.awslambda.models import LambdaFunction

if TYPE_CHECKING:
    from ebs_snapshot_local.sandbox import SandboxPool


class LambdaServiceFault(Exception):
    """A fault of the Lambda service itself (not the handler), reported under AWS's error name,
    e.g. "Lambda.TooManyRequestsException", so the state machine's Retry sees what AWS sends."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str  # "package.module.function", as in template.yaml
    timeout_seconds: int
    memory_mb: int
    arn: str


class LocalContext:
    """The parts of the Lambda context object the handlers and Powertools use."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + spec.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalLambdaRuntime:
    """Maps function names to handlers and stands in for Lambda's invoke."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionSpec] = {}
        self.invocations: dict[str, int] = {}
        # Called before each invocation (function name, event); may raise to simulate a Lambda fault.
        self.before_invoke: Callable[[str, Any], None] | None = None
        self.isolate: set[str] = set()
        self._sandboxes: SandboxPool | None = None

    def register(self, spec: FunctionSpec) -> None:
        self.functions[spec.name] = spec

    def invoke(self, function_name: str, event: Any) -> tuple[str, bool]:
        spec = self.functions[function_name]
        self.invocations[function_name] = self.invocations.get(function_name, 0) + 1
        if self.before_invoke is not None:
            try:
                self.before_invoke(function_name, event)
            except Exception as error:  # noqa: BLE001 - a simulated Lambda fault, reported as Lambda would
                return error_payload(error), True
        if function_name in self.isolate:
            return self.sandboxes().invoke(spec, event)
        return run_handler(spec, event)

    def isolate_functions(self, function_names: set[str], log: IO[str] | None = None) -> SandboxPool:
        """Run these functions in sandbox processes from now on; returns the pool (its ``stats``)."""
        from ebs_snapshot_local.sandbox import SandboxPool

        self.close_sandboxes()
        self.isolate = set(function_names)
        self._sandboxes = SandboxPool(log)
        return self._sandboxes

    def sandboxes(self) -> SandboxPool:
        if self._sandboxes is None:
            raise RuntimeError("isolate_functions() was not called")
        return self._sandboxes

    def close_sandboxes(self) -> None:
        if self._sandboxes is not None:
            self._sandboxes.close()

    def install(self) -> None:
        runtime = self

        def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            if isinstance(event, str):
                event = json.loads(event or "{}")
            body, errored = runtime.invoke(self.function_name, event if event is not None else {})
            return body, errored, ""

        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


def run_handler(spec: FunctionSpec, event: Any) -> tuple[str, bool]:
    """Call the handler named in ``spec``; (JSON body, errored) as Lambda's Invoke returns them."""
    module_name, _, attribute = spec.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    try:
        result = handler(event, LocalContext(spec))
    except Exception as error:  # noqa: BLE001 - reported to the caller as Lambda would
        return error_payload(error), True
    return json.dumps(result), False


def error_payload(error: Exception) -> str:
    return json.dumps(
        {
            "errorType": error.error_type if isinstance(error, LambdaServiceFault) else type(error).__name__,
            "errorMessage": str(error),
            "stackTrace": traceback.format_exception(error)[-5:],
        }
    )
