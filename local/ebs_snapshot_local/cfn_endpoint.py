"""A local stand-in for CloudFormation's ResponseURL: receives the provider's real PUT.

Each request gets its own URL; ``wait_for`` blocks until that request's answer arrives.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ResponseEndpoint:
    def __init__(self) -> None:
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.received_at: dict[str, float] = {}  # monotonic time of each request's first answer
        self.condition = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request_key = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                with endpoint.condition:
                    endpoint.received_at.setdefault(request_key, time.monotonic())
                    endpoint.responses.setdefault(request_key, []).append(body)
                    endpoint.condition.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="cfn-response-endpoint")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url_for(self, request_id: str) -> str:
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        # Shaped like the presigned S3 URL CloudFormation sends, signature and all.
        return f"http://{host}:{port}/cloudformation-custom-resource-response/{request_id}?X-Amz-Signature=local-secret"

    def wait_for(self, request_id: str, timeout_seconds: float) -> dict[str, Any]:
        """The first answer to ``request_id``; raises TimeoutError if none comes in time."""
        with self.condition:
            answered = self.condition.wait_for(lambda: request_id in self.responses, timeout=timeout_seconds)
            if not answered:
                raise TimeoutError(f"No CloudFormation response for request {request_id} within {timeout_seconds:.0f} s")
            return self.responses[request_id][0]

    def answers(self, request_id: str) -> list[dict[str, Any]]:
        with self.condition:
            return list(self.responses.get(request_id, []))
