"""The API's guards without a server: SSRF policy (with a loopback HTTP server
that redirects), prompt cleaning, base64, API key and the rate limiter."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import threading
import time
from contextlib import nullcontext as does_not_raise
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.fetch import (
    UrlFetchError,
    UrlPolicy,
    UrlRefusedError,
    address_refusal,
    check_url,
    fetch_image_url,
    host_allowed,
)
from api.request import (
    clean_prompt,
    decode_base64,
    parse_format,
    parse_include,
    parse_polygons,
)
from core.errors import PayloadTooLargeError, RateLimitedError, UserInputError
from core.ratelimit import RateLimiter, UnauthorizedError, check_api_key

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"x" * 100


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "loopback"),  # case: IPv4 loopback
        ("127.8.9.10", "loopback"),  # case: anywhere in 127/8
        ("::1", "loopback"),  # case: IPv6 loopback
        ("::ffff:127.0.0.1", "loopback"),  # case: IPv4-mapped loopback
        ("169.254.169.254", "metadata"),  # case: cloud metadata
        ("fd00:ec2::254", "metadata"),  # case: AWS IPv6 metadata
        ("100.100.100.200", "metadata"),  # case: Alibaba metadata
        ("169.254.1.1", "link-local"),  # case: link-local
        ("fe80::1", "link-local"),  # case: IPv6 link-local
        ("10.0.0.1", "private"),  # case: RFC 1918 10/8
        ("192.168.1.1", "private"),  # case: RFC 1918 192.168/16
        ("172.16.0.1", "private"),  # case: RFC 1918 172.16/12
        ("fc00::1", "private"),  # case: unique local
        ("2002:7f00:1::", "loopback"),  # case: 6to4 wrapping 127.0.0.1
        ("0.0.0.0", "not a public"),  # case: unspecified
        ("100.64.0.1", "not a public"),  # case: shared address space
        ("224.0.0.1", "not a public"),  # case: multicast
        ("8.8.8.8", None),  # case: public IPv4
        ("2606:4700:4700::1111", None),  # case: public IPv6
    ],
)
def test_address_refusal(address: str, refused: str | None) -> None:
    reason = address_refusal(ipaddress.ip_address(address))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


@pytest.mark.parametrize(
    ("host", "allowlist", "allowed"),
    [
        ("images.example.com", ("images.example.com",), True),  # case: exact
        ("IMAGES.example.com.", ("images.example.com",), True),  # case: case, dot
        ("a.images.example.com", ("images.example.com",), False),  # case: no sub
        ("a.example.com", ("*.example.com",), True),  # case: wildcard sub
        ("evilexample.com", ("*.example.com",), False),  # case: suffix trick
        ("example.com.evil.net", ("*.example.com",), False),  # case: prefix trick
        ("anything.net", ("*",), True),  # case: star allows any name
        ("anything.net", (), False),  # case: empty list allows none
        ("::1", ("[::1]",), True),  # case: bracketed IPv6 entry
    ],
)
def test_host_allowed(host: str, allowlist: tuple[str, ...], allowed: bool) -> None:
    assert host_allowed(host, allowlist) is allowed


def _policy(allowlist=("*",), resolve=None, **kwargs) -> UrlPolicy:
    extra = {"resolve": resolve} if resolve else {}
    return UrlPolicy(
        allowlist=allowlist, max_bytes=1000, timeout_s=5, **extra, **kwargs
    )


@pytest.mark.parametrize(
    ("url", "resolved", "expectation"),
    [
        ("file:///etc/passwd", [], pytest.raises(UrlRefusedError)),  # case: file
        ("ftp://example.com/a.png", [], pytest.raises(UrlRefusedError)),  # case: ftp
        ("gopher://example.com/", [], pytest.raises(UrlRefusedError)),  # case: gopher
        ("http://u:p@example.com/", [], pytest.raises(UrlRefusedError)),  # case: creds
        (
            "http://public.test/",
            ["127.0.0.1"],
            pytest.raises(UrlRefusedError),
        ),  # case: DNS->loopback
        (
            "http://public.test/",
            ["8.8.8.8", "10.1.1.1"],
            pytest.raises(UrlRefusedError),
        ),  # case: one private
        (
            "http://public.test/",
            ["169.254.169.254"],
            pytest.raises(UrlRefusedError),
        ),  # case: DNS->metadata
        (
            "http://127.0.0.1/",
            ["127.0.0.1"],
            pytest.raises(UrlRefusedError),
        ),  # case: literal
        (
            "http://[::1]:8080/",
            ["::1"],
            pytest.raises(UrlRefusedError),
        ),  # case: v6 literal
        ("http:///nohost", [], pytest.raises(UserInputError)),  # case: no host
        ("http://public.test/a.png", ["8.8.8.8"], does_not_raise()),  # case: public
    ],
)
async def test_check_url(url: str, resolved: list[str], expectation) -> None:
    with expectation:
        target = await check_url(url, _policy(resolve=lambda host, port: resolved))
        assert target.address == resolved[0]


async def test_check_url_refuses_hosts_not_in_the_allowlist() -> None:
    policy = _policy(("images.example.com",), resolve=lambda h, p: ["8.8.8.8"])
    with pytest.raises(UrlRefusedError, match="IMAGE_URL_ALLOWLIST"):
        await check_url("https://other.example.com/a.png", policy)


class _Handler(BaseHTTPRequestHandler):
    """Loopback server: /ok serves PNG_BYTES, /big 5000 bytes, /slow stalls,
    /to?u=<url> redirects (302) to u, /loop redirects to itself."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/ok":
            self._send(200, PNG_BYTES)
        elif path == "/big":
            self._send(200, b"\x89PNG" + b"0" * 4996)
        elif path == "/slow":
            self.server.release.wait(10)  # type: ignore[attr-defined]
            self._send(200, PNG_BYTES)
        elif path == "/to":
            self.send_response(302)
            self.send_header("Location", query.removeprefix("u="))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"missing")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the /slow client may have given up

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def origin():
    """Base URL of a loopback HTTP server, reached as host name "origin.test"."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://origin.test:{server.server_address[1]}"
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()


def _only_test_origin(ip) -> str | None:
    """The real policy, except that 127.0.0.1 stands in for a public origin."""
    return None if str(ip) == "127.0.0.1" else address_refusal(ip)


def _origin_policy(**kwargs) -> UrlPolicy:
    names = {"origin.test": "127.0.0.1", "inside.test": "10.0.0.7"}

    def resolve(host: str, port: int) -> list[str]:
        return [names.get(host, host)]

    defaults = {"allowlist": ("origin.test", "inside.test", "127.0.0.2", "::1")}
    return UrlPolicy(
        **{**defaults, "max_bytes": 1000, "timeout_s": 3, **kwargs},
        resolve=resolve,
        refusal=_only_test_origin,
    )


async def test_fetch_follows_a_checked_redirect(origin: str) -> None:
    data = await fetch_image_url(f"{origin}/to?u=/ok", _origin_policy())
    assert data == PNG_BYTES


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("http://127.0.0.2/x", UrlRefusedError, "loopback"),  # case: loopback IP
        ("http://[::1]/x", UrlRefusedError, "loopback"),  # case: IPv6 loopback
        (
            "http://169.254.169.254/latest/",
            UrlRefusedError,
            "IMAGE_URL_ALLOWLIST",
        ),  # case: metadata
        ("http://inside.test/x", UrlRefusedError, "private"),  # case: name -> 10/8
        ("file:///etc/passwd", UrlRefusedError, "http or https"),  # case: file
        ("http://elsewhere.test/x", UrlRefusedError, "ALLOWLIST"),  # case: host
    ],
)
async def test_fetch_refuses_redirects_to_forbidden_targets(
    origin: str, target: str, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        await fetch_image_url(f"{origin}/to?u={target}", _origin_policy())


async def test_fetch_refuses_metadata_address_when_allowlisted(origin: str) -> None:
    policy = _origin_policy(allowlist=("origin.test", "169.254.169.254"))
    with pytest.raises(UrlRefusedError, match="metadata"):
        await fetch_image_url(f"{origin}/to?u=http://169.254.169.254/", policy)


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/loop", UrlFetchError, "redirected more than"),  # case: redirect loop
        ("/big", PayloadTooLargeError, "larger than"),  # case: size cap
        ("/missing", UrlFetchError, "Could not fetch an image"),  # case: 404, generic
    ],
)
async def test_fetch_failures(origin: str, path: str, error: type, message: str):
    with pytest.raises(error, match=message):
        await fetch_image_url(origin + path, _origin_policy())


async def test_fetch_times_out(origin: str) -> None:
    with pytest.raises(UrlFetchError, match=r"longer than 0\.5 s"):
        await fetch_image_url(f"{origin}/slow", _origin_policy(timeout_s=0.5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("segment cat", "segment cat"),  # case: unchanged
        ("  segment\tcat\r\n", "segment cat"),  # case: whitespace collapsed
        ("segment\x00 cat\x07", "segment cat"),  # case: control chars removed
        ("segment \u202equ\u202c cat", "segment qu cat"),  # case: bidi override
        ("قطعة القط", "قطعة القط"),  # case: Arabic kept
        ("segment 猫", "segment 猫"),  # case: CJK kept
    ],
)
def test_clean_prompt(text: str, expected: str) -> None:
    assert clean_prompt(text, 100) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "required"),  # case: missing
        ("", "empty"),  # case: empty
        ("\x00\x01\u202e", "empty"),  # case: only control characters
        ("x" * 101, "limit is 100"),  # case: too long
        (42, "must be text"),  # case: not a string
    ],
)
def test_clean_prompt_refuses(text, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        clean_prompt(text, 100)


@pytest.mark.parametrize(
    ("text", "expectation"),
    [
        (base64.b64encode(PNG_BYTES).decode(), does_not_raise()),  # case: plain
        (
            "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode(),
            does_not_raise(),
        ),  # case: data URL
        (
            base64.b64encode(PNG_BYTES).decode().rstrip("="),
            does_not_raise(),
        ),  # case: unpadded
        ("not base64 !!", pytest.raises(UserInputError)),  # case: junk
        ("", pytest.raises(UserInputError)),  # case: empty
        (None, pytest.raises(UserInputError)),  # case: missing
        ("A" * 2000, pytest.raises(PayloadTooLargeError)),  # case: over the cap
    ],
)
def test_decode_base64(text, expectation) -> None:
    with expectation:
        assert decode_base64(text, 1000) == PNG_BYTES


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer s3cret-key", None),  # case: valid
        ("bearer s3cret-key", None),  # case: scheme case-insensitive
        ("Bearer  s3cret-key ", None),  # case: spaces around the token
        ("Bearer wrong", "The API key is not valid."),  # case: wrong key
        ("Bearer s3cret-ke", "The API key is not valid."),  # case: prefix
        ("Bearer s3cret-key x", "The API key is not valid."),  # case: extra word
        ("Basic s3cret-key", "'Authorization: Bearer <key>'"),  # case: scheme
        ("Bearer ", "send the header 'Authorization: Bearer <key>'"),  # case: empty
        (None, "This API needs an API key"),  # case: no header
    ],
)
def test_check_api_key(header: str | None, message: str | None) -> None:
    if message is None:
        identity = check_api_key(header, "s3cret-key")
        expected = hashlib.sha256(b"s3cret-key").hexdigest()[:12]
        assert identity == f"key:{expected}"  # short, not the key itself
        return
    with pytest.raises(UnauthorizedError) as caught:
        check_api_key(header, "s3cret-key")
    assert message in caught.value.message


def test_no_api_key_configured_means_open() -> None:
    assert check_api_key(None, None) is None
    assert check_api_key("Bearer anything", "") is None


@pytest.mark.parametrize("limit", [1, 3])
def test_rate_limiter_refuses_past_the_limit_per_client(limit: int) -> None:
    limiter = RateLimiter(limit)
    for _ in range(limit):
        limiter.hit("ip:a")
    with pytest.raises(RateLimitedError) as caught:
        limiter.hit("ip:a")
    assert 58 <= caught.value.retry_after_s <= 60  # the window just started
    assert f"the limit is {limit} per minute (RATE_LIMIT)" in caught.value.message
    assert f"Try again in {caught.value.retry_after_s} s" in caught.value.message
    limiter.hit("ip:b")  # another client has its own window


def test_rate_limit_zero_is_off_and_negative_is_refused() -> None:
    limiter = RateLimiter(0)
    for _ in range(100):
        limiter.hit("ip:a")
    assert limiter.per_minute == 0
    with pytest.raises(ValueError, match="RATE_LIMIT must be >= 0, got -1"):
        RateLimiter(-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {"mask_rle"}),  # case: default
        ("overlay, MASK_PNG", {"overlay", "mask_png"}),  # case: list, case
        ("", set()),  # case: nothing
    ],
)
def test_parse_include(text, expected) -> None:
    assert parse_include(text) == expected


def test_parse_include_refuses_unknown_options() -> None:
    with pytest.raises(UserInputError, match="polygons"):
        parse_include("overlay,polygons")


@pytest.mark.parametrize(
    ("text", "expectation", "expected"),
    [
        (None, does_not_raise(), "json"),  # case: default
        ("COCO", does_not_raise(), "coco"),  # case: upper case
        (" yolo ", does_not_raise(), "yolo"),  # case: spaces
        ("zip", does_not_raise(), "zip"),  # case: zip
        ("", does_not_raise(), "json"),  # case: empty means default
        # case: unknown, the accepted ones listed
        ("xml", pytest.raises(UserInputError, match="json, coco, yolo, zip"), None),
        # case: the bad value is named
        ("masks.zip", pytest.raises(UserInputError, match=r"'masks\.zip'"), None),
    ],
)
def test_parse_format(text, expectation, expected) -> None:
    with expectation:
        assert parse_format(text) == expected


@pytest.mark.parametrize(
    ("text", "fmt", "expectation", "expected"),
    [
        (None, "json", does_not_raise(), False),  # case: default off
        ("true", "coco", does_not_raise(), True),  # case: coco
        ("ON", "zip", does_not_raise(), True),  # case: zip, spelled on
        ("false", "yolo", does_not_raise(), False),  # case: off is fine anywhere
        # case: json has no COCO masks
        ("1", "json", pytest.raises(UserInputError, match="format='json'"), None),
        # case: YOLO polygons are not optional
        ("yes", "yolo", pytest.raises(UserInputError, match="coco or zip"), None),
        # case: not a boolean
        ("maybe", "coco", pytest.raises(UserInputError, match="true or false"), None),
    ],
)
def test_parse_polygons(text, fmt, expectation, expected) -> None:
    with expectation:
        assert parse_polygons(text, fmt) is expected


def test_retry_after_counts_down_with_the_window(monkeypatch) -> None:
    import core.ratelimit

    limiter = RateLimiter(1)
    limiter.hit("ip:a")
    later = time.time() + 45  # the same window, 45 s on
    monkeypatch.setattr(core.ratelimit.time, "time", lambda: later)
    with pytest.raises(RateLimitedError) as caught:
        limiter.hit("ip:a")
    assert 14 <= caught.value.retry_after_s <= 16
    assert f"Try again in {caught.value.retry_after_s} s" in caught.value.message
