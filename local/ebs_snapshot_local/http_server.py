"""moto's server with HTTP keep-alive, as AWS endpoints have it.

Werkzeug's development server closes every connection after one response, so each SDK call
pays a TCP connect and a new server thread. Real AWS keeps connections open, and the provider
depends on that (one client per worker, a pool sized for its threads); without keep-alive the
emulation measures connection setup instead of the uploader. This handler keeps a connection
open whenever it can drain the request body, and closes it otherwise.
"""

from __future__ import annotations

import io
import socket
import traceback
from collections.abc import Callable
from typing import IO, Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


class CountingBody:
    """The request body as a stream the app may read any part of; the rest is drained after."""

    def __init__(self, stream: IO[bytes] | io.BufferedIOBase, length: int) -> None:
        self.stream = stream
        self.remaining = length

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        data = self.stream.read(size) if size else b""
        self.remaining -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.stream.readline(limit) if limit else b""
        self.remaining -= len(data)
        return data

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def drain(self) -> None:
        while self.remaining:
            if not self.read(min(self.remaining, 1 << 20)):
                break


class KeepAliveRequestHandler(MotoRequestHandler):
    """werkzeug builds the environ (with moto's header handling); this class runs the app and
    writes the answer itself, because werkzeug's own writer closes the connection and then
    drains the socket, which would swallow the client's next request."""

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm on, the body waits for the
        # client's delayed ACK of the headers: ~40 ms added to every call, which AWS does not add.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        body: CountingBody | None = None
        if environ.get("wsgi.input_terminated"):
            self.close_connection = True  # a chunked body: no length to drain by
        else:
            body = CountingBody(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = body
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            answer["status"], answer["headers"] = status, headers
            return lambda _data: None  # the legacy write() callable; moto does not use it

        try:
            chunks = self.server.app(environ, start_response)
            try:
                content = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except Exception:  # noqa: BLE001 - a broken request must not take the server thread down
            self.log_error("%s", traceback.format_exc())
            answer = {"status": "500 Internal Server Error", "headers": [("Content-Type", "text/plain")]}
            content = b"Internal Server Error"
            self.close_connection = True
        code, _, reason = str(answer["status"]).partition(" ")
        self.send_response(int(code), reason)
        head = environ["REQUEST_METHOD"] == "HEAD"  # its Content-Length is the object's, not this body's
        for name, value in answer["headers"]:
            if name.lower() not in ("connection", "transfer-encoding") and (head or name.lower() != "content-length"):
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(content)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head and content:
            self.wfile.write(content)
        self.wfile.flush()
        if body is not None:
            body.drain()


class KeepAliveMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` with keep-alive, and an optional WSGI layer in front of moto."""

    def __init__(self, *, ip_address: str, port: int, front: Callable[[WsgiApp], WsgiApp] | None = None) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.front = front

    def _server_entry(self) -> None:
        app: WsgiApp = DomainDispatcherApplication(create_backend_app)
        if self.front is not None:
            app = self.front(app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
