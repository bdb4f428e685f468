"""Keep-alive connections of the hot path: reopened when the server dropped them while idle,
and every other transport failure raised as the botocore error ``aws.call`` retries; a
presigned read that S3 redirects to the bucket's region."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from uploader import aws, config, wire
from uploader.range_read import RangeReader

Behaviour = Callable[[socket.socket], None]
Server = Callable[[Behaviour], tuple[str, list[int]]]


def read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += connection.recv(65536)
    return head


def answer_once_then_close(connection: socket.socket) -> None:
    """Answers one request, then closes as a server does with an idle keep-alive connection."""
    read_request(connection)
    connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    connection.close()


def close_without_answering(connection: socket.socket) -> None:
    read_request(connection)
    connection.close()


def never_answer(connection: socket.socket) -> None:
    read_request(connection)
    threading.Event().wait(5)


@pytest.fixture
def server() -> Iterator[Server]:
    listeners: list[socket.socket] = []

    def start(behaviour: Behaviour) -> tuple[str, list[int]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        accepted: list[int] = []

        def serve() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                accepted.append(1)
                threading.Thread(target=behaviour, args=(connection,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", accepted

    yield start
    for listener in listeners:
        listener.close()


def put(endpoint: wire.Endpoint) -> wire.Answer:
    return endpoint.send("PUT", "/snapshots/snap-1/blocks/0", [("host", endpoint.netloc)], b"x" * 1024)


def test_a_connection_the_server_closed_while_idle_is_reopened_without_failing_the_call(server: Server) -> None:
    url, accepted = server(answer_once_then_close)
    endpoint = wire.Endpoint(url)
    assert put(endpoint).status == 201
    assert put(endpoint).status == 201  # the kept connection was closed by the server: a new one
    assert len(accepted) == 2


def test_a_fresh_connection_closed_without_an_answer_is_a_retryable_failure(server: Server) -> None:
    url, accepted = server(close_without_answering)
    with pytest.raises(ConnectionClosedError) as raised:
        put(wire.Endpoint(url))
    assert aws.is_retryable(raised.value)
    assert len(accepted) == 1  # not reopened: only an idle kept connection is


def test_no_answer_within_the_read_timeout_is_a_read_timeout(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "READ_TIMEOUT_SECONDS", 0.3)
    url, _ = server(never_answer)
    with pytest.raises(ReadTimeoutError) as raised:
        put(wire.Endpoint(url))
    assert aws.is_retryable(raised.value)


def test_nothing_listening_is_an_endpoint_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(EndpointConnectionError) as raised:
            put(wire.Endpoint(url))
    assert aws.is_retryable(raised.value)


def answer_moved_permanently(connection: socket.socket) -> None:
    while read_request(connection):
        connection.sendall(
            b"HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: us-west-2\r\nContent-Type: application/xml\r\n"
            b"Content-Length: 53\r\n\r\n<Error><Code>PermanentRedirect</Code></Error>        "
        )


class ClientInAnotherRegion:
    """What the reader needs of an S3 client: a presigned URL (here to a server that redirects)
    and ``get_object``, which follows S3's redirects as botocore's client does."""

    def __init__(self, url: str, content: bytes) -> None:
        self.url, self.content, self.gets = url, content, 0
        self.meta = boto3.session.Session(region_name="eu-west-1").client("s3").meta

    def generate_presigned_url(self, *_: Any, **__: Any) -> str:
        return f"{self.url}/bucket/key?X-Amz-Signature=0"

    def get_object(self, *, Range: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - botocore's names
        self.gets += 1
        first, last = (int(n) for n in Range.removeprefix("bytes=").split("-"))
        return {"Body": io.BytesIO(self.content[first : last + 1])}


def test_a_bucket_in_another_region_is_read_through_the_client_which_follows_the_redirect(server: Server) -> None:
    url, _ = server(answer_moved_permanently)
    content = bytes(range(256)) * 64
    client = ClientInAnotherRegion(url, content)
    reader = RangeReader(client, "bucket", "key", None)
    buffer = bytearray(1024)
    assert reader.read_into(100, 1123, buffer) == 1024 and bytes(buffer) == content[100:1124]
    assert reader.read(0, 9) == content[:10]  # from now on straight through the client
    assert client.gets == 2
