"""Fetch a client-named image URL without becoming an SSRF proxy.

Rules, checked on the first URL and again on every redirect hop:
- http or https only, no user:password@, host in the allowlist;
- every address the host resolves to must be public (``is_global``): loopback,
  private, link-local (169.254.169.254 metadata), shared, reserved, multicast
  and IPv4-mapped/6to4/Teredo wrappers of those are refused;
- the connection goes to the checked address itself (pinned, with Host and
  TLS SNI set to the name), so DNS cannot answer differently the second time;
- size and total time are capped; proxies from the environment are ignored;
- with the allowlist ``*`` only ports IMAGE_URL_PORTS (80, 443) may be named;
- once connected, every failure is one generic message: no upstream status or
  bytes reach the client (no port scanning or banner reading through us).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from core.config import MB
from core.errors import (
    PayloadTooLargeError,
    UrlFetchError,
    UrlRefusedError,
    UserInputError,
)

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
ENABLE_HINT = (
    "Fetching images by URL is disabled on this server. Upload the file as "
    "image_file instead, or ask the operator to set ALLOW_IMAGE_URL=true and "
    "IMAGE_URL_ALLOWLIST=<hosts>."
)


def resolve_host(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (blocking getaddrinfo)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched from, or None when it is a public address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return address_refusal(inner)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified or ip.is_multicast:
        return "not a public address (unspecified or multicast)"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address (fec0::/10, deprecated but routable inside)"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


def host_allowed(host: str, allowlist: tuple[str, ...]) -> bool:
    """``host`` matches an entry: exact name/IP, ``*.domain`` or ``*``."""
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower().strip("[]").rstrip(".") for e in allowlist):
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
    return False


@dataclass(frozen=True)
class UrlPolicy:
    """What may be fetched; ``resolve``/``refusal`` are seams for tests."""

    allowlist: tuple[str, ...]
    max_bytes: int
    timeout_s: float
    max_redirects: int = 3
    ports: tuple[int, ...] = (80, 443)  # the only ones with the allowlist "*"
    resolve: Callable[[str, int], list[str]] = field(default=resolve_host)
    refusal: Callable[[IPAddress], str | None] = field(default=address_refusal)


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # as the client named it
    address: str  # the checked address the connection goes to


async def check_url(url: str, policy: UrlPolicy) -> _Target:
    """Validate ``url`` and resolve it; raises UrlRefusedError / UrlFetchError."""
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes "xn--" labels: a bad one raises IDNAError here
    except (httpx.InvalidURL, TypeError, ValueError) as exc:  # IDNAError: ValueError
        raise UserInputError(f"image_url is not a valid URL ({exc}).") from exc
    if parsed.scheme not in ("http", "https"):
        raise UrlRefusedError(
            f"image_url must be http or https, got {parsed.scheme or 'no'} scheme."
        )
    if parsed.userinfo:
        raise UrlRefusedError("image_url must not contain user:password@.")
    if not host:
        raise UserInputError("image_url has no host name.")
    if not host_allowed(host, policy.allowlist):
        raise UrlRefusedError(
            f"The host {host!r} is not in this server's IMAGE_URL_ALLOWLIST."
        )
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if "*" in policy.allowlist and port not in policy.ports:
        raise UrlRefusedError(
            f"image_url may only use port(s) {', '.join(map(str, policy.ports))} "
            f"on this server (IMAGE_URL_PORTS), got {port}."
        )
    try:
        addresses = await asyncio.to_thread(policy.resolve, host, port)
    except (OSError, UnicodeError) as exc:
        raise UrlFetchError(f"Could not resolve the host {host!r} ({exc}).") from exc
    if not addresses:
        raise UrlFetchError(f"The host {host!r} has no address.")
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%")[0])
        reason = policy.refusal(ip)
        if reason is not None:
            logger.warning("refused image_url %s: %s is %s", host, ip, reason)
            raise UrlRefusedError(
                f"The host {host!r} resolves to {ip}, {reason}; "
                "only public addresses may be fetched."
            )
    return _Target(parsed, addresses[0])


async def fetch_image_url(url: str, policy: UrlPolicy) -> bytes:
    """The body of ``url`` (at most ``policy.max_bytes``), following checked redirects.

    Raises UrlRefusedError (403), UrlFetchError (422), PayloadTooLargeError (413).
    """
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _fetch(url, policy)
    except TimeoutError as exc:
        raise UrlFetchError(
            f"Fetching image_url took longer than {policy.timeout_s:g} s."
        ) from exc


async def _fetch(url: str, policy: UrlPolicy) -> bytes:
    limits = httpx.Timeout(policy.timeout_s)
    async with httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=limits
    ) as client:
        current = url
        for _ in range(policy.max_redirects + 1):
            target = await check_url(current, policy)
            location = await _get_one(client, target, policy)
            if isinstance(location, bytes):
                return location
            current = str(target.url.join(location))
    raise UrlFetchError(f"image_url redirected more than {policy.max_redirects} times.")


async def _get_one(
    client: httpx.AsyncClient, target: _Target, policy: UrlPolicy
) -> bytes | str:
    """GET the pinned address: the body, or the redirect's Location."""
    url = target.url
    pinned = url.copy_with(host=target.address)
    headers = {"Host": url.netloc.decode("ascii"), "Accept": "image/*"}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    try:
        async with client.stream(
            "GET", pinned, headers=headers, extensions=extensions
        ) as response:
            if response.status_code in REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise UrlFetchError("image_url redirected without a Location.")
                return location
            if response.status_code != 200:
                logger.warning("image_url %s answered %d", url, response.status_code)
                raise _unusable()
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise _too_large(policy.max_bytes)
            chunks, total = [], 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > policy.max_bytes:
                    raise _too_large(policy.max_bytes)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        logger.warning("image_url %s failed: %s", url, exc)
        raise _unusable() from exc


def _unusable() -> UrlFetchError:
    """The one message for any failure after connecting (status, reset, TLS)."""
    return UrlFetchError(
        "Could not fetch an image from image_url; check that the URL serves the "
        "image publicly, or upload the file as image_file instead."
    )


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The image at image_url is larger than {max_bytes / MB:g} MB "
        "(IMAGE_URL_MAX_MB)."
    )
