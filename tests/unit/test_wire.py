"""Keep-alive connections of the hot path: reopened when the server dropped them while idle,
and every other transport failure raised as the botocore error ``aws.call`` retries; a
presigned read that S3 redirects to the bucket's region."""

from __future__ import annotations

import contextlib
import datetime
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError, SSLError

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


def answer_garbage(connection: socket.socket) -> None:
    read_request(connection)
    connection.sendall(b"SPDY/3 what\r\n\r\n")


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


@pytest.mark.parametrize("behaviour", [close_without_answering, answer_garbage], ids=["closed", "not-http"])
def test_a_fresh_connection_without_a_valid_answer_is_a_retryable_failure(server: Server, behaviour: Behaviour) -> None:
    url, accepted = server(behaviour)
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


def elsewhere(status: bytes, region: bytes = b"us-west-2") -> Behaviour:
    """S3's answer to a presigned GET it will not serve there: a redirect (a bucket in another
    region, or created in the last day), or a 400 refusing the signature's region."""

    def answer(connection: socket.socket) -> None:
        while read_request(connection):
            connection.sendall(
                b"HTTP/1.1 " + status + b"\r\nx-amz-bucket-region: " + region + b"\r\nContent-Type: application/xml\r\n"
                b"Content-Length: 53\r\n\r\n<Error><Code>PermanentRedirect</Code></Error>        "
            )

    return answer


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


@pytest.mark.parametrize(
    ("status", "region"),
    [
        (b"301 Moved Permanently", b"us-west-2"),
        (b"307 Temporary Redirect", b"eu-west-1"),  # a new bucket in the client's own region
        (b"400 Bad Request", b"us-west-2"),
    ],
)
def test_a_bucket_s3_will_not_serve_there_is_read_through_the_client_which_follows_s3(
    server: Server, status: bytes, region: bytes
) -> None:
    url, _ = server(elsewhere(status, region))
    content = bytes(range(256)) * 64
    client = ClientInAnotherRegion(url, content)
    reader = RangeReader(client, "bucket", "key", None)
    buffer = bytearray(1024)
    assert reader.read_into(100, 1123, buffer) == 1024 and bytes(buffer) == content[100:1124]
    assert reader.read(0, 9) == content[:10]  # from now on straight through the client
    assert client.gets == 2


def answer_chunked_then_close(connection: socket.socket) -> None:
    read_request(connection)
    connection.sendall(
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b'5\r\n{"a":\r\n3;ext=1\r\n 1}\r\n0\r\nTrailer: x\r\n\r\n'
    )
    connection.close()


def test_chunked_answers_and_connection_close_are_honoured(server: Server) -> None:
    url, accepted = server(answer_chunked_then_close)
    endpoint = wire.Endpoint(url)
    answer = put(endpoint)
    assert (answer.status, answer.body) == (400, b'{"a": 1}')
    assert put(endpoint).status == 400  # the server said close: a new connection, no stale retry needed
    assert len(accepted) == 2


def test_https_verifies_the_servers_certificate_for_its_name_and_carries_the_body(tmp_path: Path) -> None:
    # GIVEN a TLS server for "localhost" whose certificate the client trusts
    certificate, key = self_signed_certificate(tmp_path, "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        with server_context.wrap_socket(listener.accept()[0], server_side=True) as connection:
            for _ in range(2):
                head = read_request(connection)
                received.append(head)
                connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        try:  # the next client refuses the certificate during the handshake
            server_context.wrap_socket(listener.accept()[0], server_side=True)
        except (ssl.SSLError, OSError):
            pass

    threading.Thread(target=serve, daemon=True).start()
    endpoint = wire.Endpoint(f"https://localhost:{port}")
    assert endpoint.tls is not None
    endpoint.tls = ssl.create_default_context(cafile=str(certificate))
    # WHEN two requests go over it THEN both are answered on one TLS connection
    assert put(endpoint).status == 201 and put(endpoint).status == 201
    assert all(head.startswith(b"PUT /snapshots/snap-1/blocks/0 HTTP/1.1") for head in received)
    # AND a certificate for another name is refused, and not retried: it would be refused again
    other = wire.Endpoint(f"https://127.0.0.1:{port}")
    other.tls = ssl.create_default_context(cafile=str(certificate))
    with pytest.raises(SSLError, match="certificate verify failed") as raised:
        put(other)
    assert not aws.is_retryable(raised.value)
    listener.close()


def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "cert.pem", directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


def answer_every_request(connection: socket.socket) -> None:
    while read_request(connection):
        time.sleep(0.05)  # slow enough that calls at once overlap
        connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")


def test_connections_outlive_the_threads_that_used_them(server: Server) -> None:
    # A warm sandbox's next range runs on new threads: they reuse the connections (in AWS, the
    # TLS handshakes), and calls at once each get their own.
    url, accepted = server(answer_every_request)
    endpoint = wire.Endpoint(url)
    for _ in range(3):  # three ranges, one after the other, each on a thread of its own
        worker = threading.Thread(target=put, args=(endpoint,))
        worker.start()
        worker.join()
    assert len(accepted) == 1
    start = threading.Barrier(4)
    answers: list[int] = []

    def calls_at_once() -> None:
        start.wait()
        answers.extend(put(endpoint).status for _ in range(3))

    at_once = [threading.Thread(target=calls_at_once) for _ in range(4)]
    for thread in at_once:
        thread.start()
    for thread in at_once:
        thread.join()
    assert answers == [201] * 12
    assert len(accepted) == 4  # the idle one reused, three more opened; none after


def refuse_after_the_headers(connection: socket.socket) -> None:
    """Answers 403 as soon as the request's headers are in, and closes without reading the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    connection.sendall(b'HTTP/1.1 403 Forbidden\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{"denied":1}  ')
    connection.shutdown(socket.SHUT_WR)
    time.sleep(0.2)
    connection.close()


def test_an_answer_sent_before_the_body_was_taken_is_read_not_lost(server: Server) -> None:
    url, _ = server(refuse_after_the_headers)
    endpoint = wire.Endpoint(url)
    answer = endpoint.send("PUT", "/snapshots/snap-1/blocks/0", [("host", endpoint.netloc)], bytes(16 << 20))
    assert (answer.status, answer.body) == (403, b'{"denied":1}  ')


def answer_interim_then_final_then_no_content(connection: socket.socket) -> None:
    read_request(connection)
    connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    read_request(connection)
    connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    read_request(connection)
    connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")


def test_interim_answers_are_skipped_and_a_204_has_no_body(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "READ_TIMEOUT_SECONDS", 2)
    url, accepted = server(answer_interim_then_final_then_no_content)
    endpoint = wire.Endpoint(url)
    started = time.monotonic()
    assert [put(endpoint).status for _ in range(3)] == [201, 204, 201]
    assert time.monotonic() - started < 1 and len(accepted) == 1  # no wait for a body that never comes


def answer_then_speak_unasked(connection: socket.socket) -> None:
    read_request(connection)
    connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    time.sleep(0.05)
    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # while idle, unasked
    with contextlib.suppress(OSError):  # the client drops this connection
        while read_request(connection):
            connection.sendall(b"HTTP/1.1 500 Wrong\r\nContent-Length: 0\r\n\r\n")


def test_an_idle_connection_with_unasked_bytes_is_not_reused(server: Server) -> None:
    url, accepted = server(answer_then_speak_unasked)
    endpoint = wire.Endpoint(url)
    assert put(endpoint).status == 201
    time.sleep(0.2)
    assert put(endpoint).status == 201  # a new connection's answer, not the stray 400
    assert len(accepted) == 2


def answer_truncated_chunks(connection: socket.socket) -> None:
    read_request(connection)
    connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    connection.close()


def test_chunked_answer_cut_short_is_a_retryable_failure(server: Server) -> None:
    url, _ = server(answer_truncated_chunks)
    with pytest.raises(ConnectionClosedError) as raised:
        put(wire.Endpoint(url))
    assert aws.is_retryable(raised.value)


def answer_whole_object(connection: socket.socket) -> None:
    read_request(connection)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n" + bytes(65536))
    time.sleep(0.5)


def test_a_success_larger_than_the_buffer_is_not_read_into_memory(server: Server) -> None:
    url, _ = server(answer_whole_object)
    endpoint = wire.Endpoint(url)
    answer = endpoint.send("GET", "/bucket/key", [("host", endpoint.netloc), ("range", "bytes=0-1023")], into=bytearray(1024))
    assert (answer.status, answer.length, answer.body) == (200, 1 << 30, b"")
    assert endpoint.idle == []  # the connection with a gigabyte unread is closed, not kept


def close_during_handshake(connection: socket.socket) -> None:
    connection.recv(65536)  # the ClientHello
    connection.close()


def test_a_tls_handshake_cut_off_is_retried_not_fatal(server: Server) -> None:
    url, _ = server(close_during_handshake)
    endpoint = wire.Endpoint(url.replace("http://", "https://"))
    with pytest.raises(EndpointConnectionError) as raised:
        put(endpoint)
    assert aws.is_retryable(raised.value)
