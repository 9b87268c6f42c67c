"""core.api.fetch against real loopback servers (HTTP and HTTPS): what the
origin receives, which statuses and sizes pass, and the exact message a
client gets for every refusal. Names resolve through the policy's resolver
seam; everything after it (pinning, TLS, streaming) is the production path."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
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

from core.api.fetch import (
    UrlPolicy,
    address_refusal,
    check_url,
    fetch_image_url,
    host_allowed,
    resolve_host,
)
from core.errors import (
    PayloadTooLargeError,
    UrlFetchError,
    UrlRefusedError,
    UserInputError,
)

BODY = b"\x89PNG\r\n\x1a\n" + b"x" * 100
UNUSABLE = (
    "Could not fetch an image from image_url; check that the URL serves the "
    "image publicly, or upload the file as image_file instead."
)


def public(ip) -> str | None:
    """The real policy, except that 127.0.0.1 stands in for a public origin."""
    return None if str(ip) == "127.0.0.1" else address_refusal(ip)


# Addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "a cloud metadata address"),  # case: AWS/GCP/Azure
        ("127.0.0.1", "a loopback address"),  # case: loopback
        ("::ffff:127.0.0.1", "a loopback address"),  # case: IPv4-mapped
        ("2002:7f00:1::", "a loopback address"),  # case: 6to4 of 127.0.0.1
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "a loopback address",
        ),  # case: Teredo, client 127.0.0.1 behind a public server
        ("0.0.0.0", "not a public address (unspecified or multicast)"),  # case: any
        ("ff02::1", "not a public address (unspecified or multicast)"),  # case: mcast
        ("fe80::1", "a link-local address"),  # case: IPv6 link-local
        (
            "fec0::1",
            "a site-local address (fec0::/10, deprecated but routable inside)",
        ),  # case: site-local
        ("10.0.0.1", "a private address"),  # case: RFC 1918
        ("100.64.0.1", "not a public address"),  # case: carrier-grade NAT
        ("8.8.8.8", None),  # case: public IPv4
        ("2002:808:808::", None),  # case: 6to4 of a public address
    ],
)
def test_address_refusal_reasons(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("host", "allowlist", "allowed"),
    [
        ("images.example.com", (" Images.Example.COM. ",), True),  # case: spacing
        ("images.example.com", ("images.example.com.",), True),  # case: entry dot
        ("example.com", ("*.example.com",), False),  # case: wildcard needs a label
        ("a.b.example.com", ("*.example.com",), True),  # case: any depth
    ],
)
def test_host_allowed_normalises_entries(host, allowlist, allowed: bool) -> None:
    assert host_allowed(host, allowlist) is allowed


def test_resolve_host_returns_each_address_once() -> None:
    assert resolve_host("127.0.0.1", 8080) == ["127.0.0.1"]
    assert resolve_host("::1", 443) == ["::1"]


async def test_the_default_policy_resolves_and_refuses_for_real() -> None:
    """No seams: the real resolver and the real address policy."""
    policy = UrlPolicy(allowlist=("127.0.0.1",), max_bytes=1000, timeout_s=5)
    with pytest.raises(UrlRefusedError) as caught:
        await check_url("http://127.0.0.1:8080/a.png", policy)
    assert caught.value.message == (
        "The host '127.0.0.1' resolves to 127.0.0.1, a loopback address; "
        "only public addresses may be fetched."
    )


# URL checks -----------------------------------------------------------------


class Resolver:
    """Answers every name with ``addresses`` and records what it was asked."""

    def __init__(self, addresses=("8.8.8.8",), error: Exception | None = None):
        self.addresses, self.error = list(addresses), error
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if self.error is not None:
            raise self.error
        return self.addresses


def policy(allowlist=("*",), resolver=None, **kwargs) -> UrlPolicy:
    return UrlPolicy(
        allowlist=allowlist,
        max_bytes=kwargs.pop("max_bytes", 1000),
        timeout_s=kwargs.pop("timeout_s", 5),
        resolve=resolver or Resolver(),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("url", "allowlist", "error", "message"),
    [
        (
            "ftp://example.com/a.png",
            ("*",),
            UrlRefusedError,
            "image_url must be http or https, got ftp scheme.",
        ),  # case: ftp
        (
            "example.com/a.png",
            ("*",),
            UrlRefusedError,
            "image_url must be http or https, got no scheme.",
        ),  # case: no scheme at all
        (
            "http://u:p@example.com/",
            ("*",),
            UrlRefusedError,
            "image_url must not contain user:password@.",
        ),  # case: credentials
        ("http:///a.png", ("*",), UserInputError, "image_url has no host name."),
        (
            "http://other.test/a.png",
            ("images.example.com",),
            UrlRefusedError,
            "The host 'other.test' is not in this server's IMAGE_URL_ALLOWLIST.",
        ),  # case: host not listed
        (
            "http://public.test:8080/a.png",
            ("*",),
            UrlRefusedError,
            "image_url may only use port(s) 80, 443 on this server "
            "(IMAGE_URL_PORTS), got 8080.",
        ),  # case: any host, but not any port
    ],
)
async def test_check_url_refusals(url, allowlist, error: type, message: str) -> None:
    resolver = Resolver()
    with pytest.raises(error) as caught:
        await check_url(url, policy(allowlist, resolver))
    assert type(caught.value) is error
    assert caught.value.message == message
    assert resolver.asked == []  # refused before any DNS lookup


@pytest.mark.parametrize("url", ["http://[::1", "http://xn--/a.png", 123])
async def test_unparsable_urls_are_a_400(url) -> None:
    with pytest.raises(UserInputError) as caught:
        await check_url(url, policy())
    assert type(caught.value) is UserInputError
    assert caught.value.message.startswith("image_url is not a valid URL (")


@pytest.mark.parametrize(
    ("url", "allowlist", "asked"),
    [
        ("http://public.test/a.png", ("*",), ("public.test", 80)),  # case: http
        ("https://public.test/a.png", ("*",), ("public.test", 443)),  # case: https
        ("http://public.test:443/a.png", ("*",), ("public.test", 443)),  # case: 443
        ("https://public.test:80/a.png", ("*",), ("public.test", 80)),  # case: 80
        (
            "http://public.test:8080/a.png",
            ("public.test",),
            ("public.test", 8080),
        ),  # case: a named host may use any port
    ],
)
async def test_check_url_resolves_the_port_it_will_connect_to(
    url: str, allowlist, asked
) -> None:
    resolver = Resolver(["8.8.4.4", "8.8.8.8"])
    target = await check_url(url, policy(allowlist, resolver))
    assert resolver.asked == [asked]
    assert target.address == "8.8.4.4"  # the first checked address is pinned


@pytest.mark.parametrize(
    ("resolver", "error", "message"),
    [
        (
            Resolver(error=socket.gaierror(-2, "Name or service not known")),
            UrlFetchError,
            "Could not resolve the host 'public.test' "
            "([Errno -2] Name or service not known).",
        ),  # case: DNS failure
        (
            Resolver(error=UnicodeError("label too long")),
            UrlFetchError,
            "Could not resolve the host 'public.test' (label too long).",
        ),  # case: name the resolver cannot encode
        (
            Resolver([]),
            UrlFetchError,
            "The host 'public.test' has no address.",
        ),  # case: empty answer
        (
            Resolver(["8.8.8.8", "fe80::1%eth0"]),
            UrlRefusedError,
            "The host 'public.test' resolves to fe80::1, a link-local address; "
            "only public addresses may be fetched.",
        ),  # case: one scoped link-local address among public ones
    ],
)
async def test_resolution_failures(resolver, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        await check_url("http://public.test/a.png", policy(resolver=resolver))
    assert caught.value.message == message


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
