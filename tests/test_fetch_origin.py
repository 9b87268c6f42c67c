"""api.fetch against real loopback origins (HTTP and HTTPS): what the
origin receives, which statuses and sizes pass, and the exact message a client
gets for every failure after connecting. "public.test" resolves to 127.0.0.1
through the resolver seam; everything after it (pinning, TLS, streaming) is the
production path."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.fetch import UrlPolicy, address_refusal, fetch_image_url
from core.errors import PayloadTooLargeError, UrlFetchError

BODY = b"\x89PNG\r\n\x1a\n" + b"x" * 100
UNUSABLE = (
    "Could not fetch an image from image_url; check that the URL serves the "
    "image publicly, or upload the file as image_file instead."
)


def public(ip) -> str | None:
    """The real policy, except that 127.0.0.1 stands in for a public origin."""
    return None if str(ip) == "127.0.0.1" else address_refusal(ip)


# Fetching from a loopback origin ----------------------------------------------


class Origin(BaseHTTPRequestHandler):
    """/ok BODY; /status/N answers N (3xx to /ok); /hops/N redirects N times;
    /sized/N and /stream/N send N bytes with and without Content-Length;
    /liar declares 10 GB and stalls; /nolocation is a 302 without Location."""

    def do_GET(self) -> None:
        self.server.requests.append(dict(self.headers))  # type: ignore[attr-defined]
        parts = self.path.strip("/").split("/")
        name, number = parts[0], int(parts[1]) if len(parts) > 1 else 0
        if name == "ok":
            self.answer(200, BODY)
        elif name == "status":
            self.answer(number, BODY, location="/ok")
        elif name == "hops":
            if number:
                self.answer(302, b"", location=f"/hops/{number - 1}")
            else:
                self.answer(200, BODY)
        elif name == "sized":
            self.answer(200, b"s" * number)
        elif name == "stream":
            self.send_response(200)  # HTTP/1.0: the body ends when we close
            self.end_headers()
            self.write(b"t" * number)
        elif name == "liar":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            self.write(b"x" * 10)
            self.server.release.wait(30)  # type: ignore[attr-defined]
        elif name == "nolocation":
            self.answer(302, b"")
        else:
            self.answer(404, b"missing")

    def answer(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.write(body)

    def write(self, body: bytes) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may stop reading early

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    server.release = threading.Event()  # type: ignore[attr-defined]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def origin() -> Iterator[ThreadingHTTPServer]:
    with serving() as server:
        yield server


def origin_policy(**kwargs) -> UrlPolicy:
    defaults = {"allowlist": ("public.test",), "max_bytes": 1000, "timeout_s": 5}
    return UrlPolicy(
        **{**defaults, **kwargs},
        resolve=lambda host, port: ["127.0.0.1"],
        refusal=public,
    )


def url(server: ThreadingHTTPServer, path: str, scheme: str = "http") -> str:
    return f"{scheme}://public.test:{server.server_address[1]}{path}"


async def test_the_origin_gets_the_name_and_an_image_request(origin) -> None:
    data = await fetch_image_url(url(origin, "/ok"), origin_policy())
    assert data == BODY
    headers = {k.lower(): v for k, v in origin.requests[-1].items()}
    assert headers["host"] == f"public.test:{origin.server_address[1]}"  # vhost
    assert headers["accept"].lower() == "image/*"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_every_redirect_status_is_followed(origin, status: int) -> None:
    assert await fetch_image_url(url(origin, f"/status/{status}"), origin_policy())


@pytest.mark.parametrize("status", [201, 204, 300, 404, 500])
async def test_any_other_status_is_the_one_generic_message(origin, status) -> None:
    with pytest.raises(UrlFetchError) as caught:
        await fetch_image_url(url(origin, f"/status/{status}"), origin_policy())
    assert caught.value.message == UNUSABLE


async def test_redirects_are_capped_at_max_redirects(origin) -> None:
    assert await fetch_image_url(url(origin, "/hops/3"), origin_policy()) == BODY
    with pytest.raises(UrlFetchError) as caught:
        await fetch_image_url(url(origin, "/hops/4"), origin_policy())
    assert caught.value.message == "image_url redirected more than 3 times."


async def test_a_redirect_without_location_is_refused(origin) -> None:
    with pytest.raises(UrlFetchError) as caught:
        await fetch_image_url(url(origin, "/nolocation"), origin_policy())
    assert caught.value.message == "image_url redirected without a Location."


@pytest.mark.parametrize("kind", ["sized", "stream"])
async def test_a_body_exactly_at_the_limit_is_accepted(origin, kind: str) -> None:
    data = await fetch_image_url(url(origin, f"/{kind}/1000"), origin_policy())
    assert len(data) == 1000


TOO_LARGE = "The image at image_url is larger than {} MB (IMAGE_URL_MAX_MB)."


@pytest.mark.parametrize(
    ("path", "max_bytes", "shown"),
    [
        ("/sized/1001", 1000, "0.000953674"),  # case: declared one byte over
        ("/stream/1001", 1000, "0.000953674"),  # case: undeclared one byte over
        ("/stream/4000000", 3 * 1024 * 1024, "3"),  # case: many reads, none over
        ("/liar", 10 * 1024 * 1024, "10"),  # case: 10 GB declared: refused at once
    ],
)
async def test_bodies_over_the_limit_are_413(
    origin, path: str, max_bytes: int, shown: str
) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        await fetch_image_url(url(origin, path), origin_policy(max_bytes=max_bytes))
    assert caught.value.message == TOO_LARGE.format(shown)


async def test_a_body_of_many_reads_arrives_whole(origin) -> None:
    data = await fetch_image_url(
        url(origin, "/stream/300000"), origin_policy(max_bytes=300_000)
    )
    assert data == b"t" * 300_000  # httpcore reads 64 KiB at a time


async def test_proxies_from_the_environment_are_ignored(origin, monkeypatch) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting fails
    proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        assert await fetch_image_url(url(origin, "/ok"), origin_policy()) == BODY
    finally:
        closed.close()


async def test_a_refused_connection_is_the_one_generic_message() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        port = closed.getsockname()[1]
        with pytest.raises(UrlFetchError) as caught:
            await fetch_image_url(f"http://public.test:{port}/a", origin_policy())
    finally:
        closed.close()
    assert caught.value.message == UNUSABLE


# HTTPS: the pinned address is reached with the name as SNI and certificate name


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_presents_the_name_not_the_pinned_address(
    tmp_path: Path, monkeypatch
) -> None:
    cert, key = self_signed(tmp_path, "public.test")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    monkeypatch.setattr(certifi, "where", lambda: str(cert))  # trust our CA only
    with serving(tls) as server:
        data = await fetch_image_url(url(server, "/ok", "https"), origin_policy())
    assert data == BODY
    assert names == ["public.test"]  # the certificate was checked for this name
