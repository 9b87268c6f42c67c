"""api.fetch without a network: which addresses are refused and why, the
allowlist, the port rules and the exact message a client gets for every
refused or unresolvable URL (names resolve through the policy's resolver seam;
one test uses the real resolver on an IP literal)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from api.fetch import (
    UrlPolicy,
    address_refusal,
    check_url,
    host_allowed,
    resolve_host,
)
from core.errors import UrlFetchError, UrlRefusedError, UserInputError

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
