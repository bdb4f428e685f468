"""Keep-alive HTTP(S) connections for the two calls a worker repeats per block (block_put.py,
range_read.py), with transport failures raised as botocore's own network errors.

Connections are kept open across calls and ranges (a warm Lambda sandbox reuses them). A
connection the server closed while idle is reopened once at no cost to the call; every other
transport failure goes to ``aws.call``, which classifies and retries.
"""

from __future__ import annotations

import http.client
import io
import os
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError, SSLError
from botocore.httpsession import get_cert_path

from uploader import config

USER_AGENT = "ebs-snapshot-provider/0.1"  # both per-block calls send it
MAX_LINE = 65_536
# A worker's readers and writers at once, and a few to spare.
MAX_IDLE_CONNECTIONS = config.WRITER_THREADS + config.READER_THREADS + 4
MAX_HEADERS = 100
MAX_UNSIZED_BODY = 1 << 20
# A reused connection failing like this was closed by the server while idle.
STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # empty when a successful body went into the caller's buffer
    length: int  # bytes of the body, wherever it went


class Endpoint:
    """An AWS endpoint URL, and this process's idle connections to it.

    A call takes an idle connection (or opens one) and gives it back after its answer, so
    connections outlive the threads of one range: a warm sandbox's next range reuses them
    instead of paying a TCP and TLS handshake per thread."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc
        self.base_path = parts.path.rstrip("/")
        self.https = parts.scheme == "https"
        # The CA bundle the SDK's clients use: AWS_CA_BUNDLE, else botocore's.
        bundle = os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
        self.tls = ssl.create_default_context(cafile=bundle) if self.https else None
        self.idle: list[Connection] = []
        self.lock = threading.Lock()

    def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None = None,
        *,
        into: bytearray | None = None,
    ) -> Answer:
        """One request and its whole answer. ``headers`` are sent as given (Host included). A
        successful answer's body goes into ``into`` when it fits: no new buffer per call."""
        connection = self._take()
        for reopened in (not connection.answered, True):
            try:
                with transport_errors(self.url):
                    answer = connection.exchange(method, target, headers, body, into)
            except ConnectionClosedError as error:
                connection.close()
                if reopened or not isinstance(error.__cause__, STALE_CONNECTION):
                    raise
            except BaseException:
                connection.close()
                raise
            else:
                self._give_back(connection)
                return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self) -> Connection:
        while True:
            with self.lock:
                connection = self.idle.pop() if self.idle else None
            if connection is None:
                return Connection(self)
            if connection.reusable():
                return connection
            connection.close()

    def _give_back(self, connection: Connection) -> None:
        with self.lock:
            if connection.sock is not None and len(self.idle) < MAX_IDLE_CONNECTIONS:
                self.idle.append(connection)
                return
        connection.close()


class Connection:
    """One connection, used by one call at a time; reopened after a close.

    HTTP/1.1 is spoken directly: these answers are a status line, a few headers and a known
    length, and ``http.client`` parses headers with the ``email`` package, which cost more CPU
    per block than the kernel's copy of the block (benchmarks/RESULTS.md)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.sock: socket.socket | None = None
        self.reader: io.BufferedReader[socket.SocketIO] | None = None
        self.answered = False  # has it carried an answer since it was opened

    def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None, into: bytearray | None
    ) -> Answer:
        sock, reader = self.sock, self.reader
        if sock is None or reader is None:
            sock, reader = self._open()
        lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
        if body is not None:
            lines.append(f"content-length: {len(body)}")
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if body:
                sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError) as error:
            # The server may have answered (a refusal) and closed before taking the whole body:
            # its answer, if it can still be read, says more than the broken pipe.
            try:
                answer = self._answer(reader, into)
            except (OSError, http.client.HTTPException):
                raise error from None
            self.close()
            return answer
        return self._answer(reader, into)

    def _answer(self, reader: io.BufferedReader[socket.SocketIO], into: bytearray | None) -> Answer:
        status, answer_headers, fields = read_head(reader)
        while 100 <= status < 200:  # interim answers (100 Continue): the real one follows
            status, answer_headers, fields = read_head(reader)
        length = int(fields["content-length"]) if "content-length" in fields else None
        if status in (204, 304):
            answer = Answer(status, answer_headers, b"", 0)
        elif fields.get("transfer-encoding", "identity").lower() != "identity":
            content = read_chunked(reader)
            answer = Answer(status, answer_headers, content, len(content))
        elif length is None:  # the body ends with the connection; never more than a range or an error
            content = reader.read((len(into) if into is not None else MAX_UNSIZED_BODY) + 1)
            answer = Answer(status, answer_headers, content, len(content))
            fields["connection"] = "close"
        elif into is not None and 200 <= status < 300:
            if length > len(into):  # not the range asked for (a whole object?): never read it into memory
                self.close()
                return Answer(status, answer_headers, b"", length)
            read_exactly(reader, memoryview(into)[:length])
            answer = Answer(status, answer_headers, b"", length)
        else:
            whole = bytearray(length)
            read_exactly(reader, memoryview(whole))
            answer = Answer(status, answer_headers, bytes(whole), length)
        self.answered = True
        if fields.get("connection", "").lower() == "close":
            self.close()
        return answer

    def reusable(self) -> bool:
        """Whether an idle connection is still open with nothing unread: a server that closed it,
        or sent something unasked, makes it readable (as urllib3 checks before reusing one)."""
        sock = self.sock
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable

    def _open(self) -> tuple[socket.socket, io.BufferedReader[socket.SocketIO]]:
        endpoint = self.endpoint
        try:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=config.CONNECT_TIMEOUT_SECONDS)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a body must not wait for an ACK
            if endpoint.tls is not None:
                sock = endpoint.tls.wrap_socket(sock, server_hostname=endpoint.host)
        except ssl.SSLCertVerificationError as error:  # refused now, refused on retry: fatal, as botocore has it
            raise SSLError(endpoint_url=endpoint.url, error=error) from error
        except OSError as error:
            raise EndpointConnectionError(endpoint_url=endpoint.url, error=error) from error
        sock.settimeout(config.READ_TIMEOUT_SECONDS)  # connect had its own, shorter one
        reader = io.BufferedReader(socket.SocketIO(sock, "rb"), buffer_size=65536)
        self.sock, self.reader, self.answered = sock, reader, False
        return sock, reader

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.sock is not None:
            self.sock.close()
        self.sock, self.reader, self.answered = None, None, False


def read_head(reader: io.BufferedReader[socket.SocketIO]) -> tuple[int, list[tuple[str, str]], dict[str, str]]:
    """The status, the headers as sent, and the same by lower-case name."""
    line = reader.readline(MAX_LINE)
    if not line:
        raise http.client.RemoteDisconnected("The server closed the connection without an answer")
    version, _, rest = line.decode("latin-1").partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise http.client.BadStatusLine(line.decode("latin-1", "replace").strip())
    headers: list[tuple[str, str]] = []
    fields: dict[str, str] = {}
    while (line := reader.readline(MAX_LINE)) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
        fields[name.strip().lower()] = value.strip()
        if len(headers) > MAX_HEADERS:
            raise http.client.HTTPException(f"More than {MAX_HEADERS} headers in an answer")
    if version == "HTTP/1.0" and fields.get("connection", "").lower() != "keep-alive":
        fields["connection"] = "close"
    return int(code), headers, fields


def read_chunked(reader: io.BufferedReader[socket.SocketIO]) -> bytes:
    parts: list[bytes] = []
    while True:
        line = reader.readline(MAX_LINE)
        if not line:
            raise http.client.IncompleteRead(b"".join(parts))
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        chunk = bytearray(size)
        read_exactly(reader, memoryview(chunk))
        parts.append(bytes(chunk))
        if reader.readline(MAX_LINE) not in (b"\r\n", b"\n"):
            raise http.client.IncompleteRead(b"".join(parts))


def read_exactly(reader: io.BufferedReader[socket.SocketIO], view: memoryview) -> None:
    got = 0
    while got < len(view):
        count = reader.readinto(view[got:])
        if not count:
            raise http.client.IncompleteRead(b"", len(view) - got)
        got += count


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Raise socket and HTTP failures as botocore's network errors, which ``aws.call`` retries."""
    try:
        yield
    except BotoCoreError:
        raise  # already botocore's (some of them are OSErrors too)
    except TimeoutError as error:
        raise ReadTimeoutError(endpoint_url=url, error=error) from error
    except (OSError, http.client.HTTPException) as error:
        raise ConnectionClosedError(endpoint_url=url) from error
