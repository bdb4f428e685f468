"""Keep-alive HTTP(S) connections for the two calls a worker repeats per block (block_put.py,
range_read.py), with transport failures raised as botocore's own network errors.

One connection per thread and endpoint, kept open across calls and ranges (a warm Lambda
sandbox reuses it). A connection the server closed while idle is reopened once at no cost to
the call; every other transport failure goes to ``aws.call``, which classifies and retries.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.httpsession import get_cert_path

from uploader import config

# A reused connection failing like this was closed by the server while idle.
STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # empty when a successful body went into the caller's buffer
    length: int  # bytes of the body, wherever it went


class Endpoint:
    """An AWS endpoint URL, and this process's connections to it (one per thread)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc
        self.base_path = parts.path.rstrip("/")
        self.https = parts.scheme == "https"
        # botocore's CA bundle, as the SDK's clients use.
        self.tls = ssl.create_default_context(cafile=get_cert_path(True)) if self.https else None
        self.local = threading.local()

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
        connection = self._connection()
        for reopened in (not connection.answered, True):
            try:
                with transport_errors(self.url):
                    return connection.exchange(method, target, headers, body, into)
            except ConnectionClosedError as error:
                connection.close()
                if reopened or not isinstance(error.__cause__, STALE_CONNECTION):
                    raise
            except BaseException:
                connection.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = Connection(self)
        return connection


class Connection:
    """One thread's connection; reopened after a close."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.http: http.client.HTTPConnection | None = None
        self.answered = False  # has it carried an answer since it was opened

    def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None, into: bytearray | None
    ) -> Answer:
        connection = self.http or self._open()
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("content-length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        length = response.length
        if into is not None and 200 <= response.status < 300 and length is not None and length <= len(into):
            read_exactly(response, memoryview(into)[:length])
            answer = Answer(response.status, response.getheaders(), b"", length)
        else:
            content = response.read()
            answer = Answer(response.status, response.getheaders(), content, len(content))
        self.answered = True
        if response.will_close:
            self.close()
        return answer

    def _open(self) -> http.client.HTTPConnection:
        endpoint, timeout = self.endpoint, config.CONNECT_TIMEOUT_SECONDS
        connection = (
            http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=endpoint.tls)
            if endpoint.tls is not None
            else http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
        )
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise EndpointConnectionError(endpoint_url=endpoint.url, error=error) from error
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a body must not wait for an ACK
        connection.sock.settimeout(config.READ_TIMEOUT_SECONDS)  # connect had its own, shorter one
        self.http, self.answered = connection, False
        return connection

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.http = None


def read_exactly(response: http.client.HTTPResponse, view: memoryview) -> None:
    got = 0
    while got < len(view):
        count = response.readinto(view[got:])
        if not count:
            raise http.client.IncompleteRead(b"", len(view) - got)
        got += count


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Raise socket and HTTP failures as botocore's network errors, which ``aws.call`` retries."""
    try:
        yield
    except TimeoutError as error:
        raise ReadTimeoutError(endpoint_url=url, error=error) from error
    except (OSError, http.client.HTTPException) as error:
        raise ConnectionClosedError(endpoint_url=url) from error
