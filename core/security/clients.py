"""Who a request comes from: the one answer the rate limits, the API queue and
the login throttle key on (docs/security.md, "Client addresses").

The socket peer, unless FORWARDED_ALLOW_IPS lists it: then the address the
proxy forwarded in X-Forwarded-For. Anyone can write that header, so it is read
only from a proxy the operator named. uvicorn rewrites the peer from the same
header by itself (it trusts 127.0.0.1 unless told otherwise), so
``pin_uvicorn_proxy_trust`` hands it the same list before it starts.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in an X-Forwarded-For entry or peer (``1.2.3.4``,
    ``1.2.3.4:80``, ``[::1]:80``, ``::1``); None when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks):
    return any(address in network for network in networks)


def client_address(scope: Mapping[str, Any], trusted: Sequence[str] = ()) -> str:
    """The client's address for an ASGI ``scope`` (HTTP or websocket).

    ``trusted`` is FORWARDED_ALLOW_IPS (addresses or networks of the reverse
    proxies). A peer outside it is the client, whatever X-Forwarded-For says.
    From a trusted peer, the rightmost X-Forwarded-For entry that is not itself
    a trusted proxy is the client (each proxy appends the address it saw); an
    entry that is not an IP address leaves the proxy's own address.
    """
    peer = scope.get("client")
    if not peer or not peer[0]:
        return UNKNOWN
    host = str(peer[0])
    networks = _networks(tuple(trusted))
    peer_ip = _ip(host)
    if peer_ip is None or not _is_trusted(peer_ip, networks):
        return host
    forwarded = ",".join(
        value.decode("latin-1")
        for name, value in scope.get("headers") or ()
        if name.lower() == b"x-forwarded-for"
    )
    entries = [entry for entry in forwarded.split(",") if entry.strip()]
    for entry in reversed(entries):
        address = _ip(entry)
        if address is None:
            return host
        if not _is_trusted(address, networks):
            return str(address)
    return str(_ip(entries[0])) if entries else host


def pin_uvicorn_proxy_trust(trusted: Sequence[str]) -> None:
    """Give uvicorn the same trusted proxies, so that its ProxyHeadersMiddleware
    does not rewrite the peer from X-Forwarded-For of a peer we do not trust.

    ``chainlit run`` imports the app before it builds ``uvicorn.Config``, which
    reads FORWARDED_ALLOW_IPS from the environment (default "127.0.0.1,::1");
    "" trusts no one.
    """
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(trusted)
    logger.info(
        "client addresses: %s",
        f"X-Forwarded-For from {', '.join(trusted)}" if trusted else "socket peer",
    )
