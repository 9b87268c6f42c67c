"""Who is asking: the one definition the rate limit and the queue key on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.security.clients import client_address


def client_id(
    scope: Mapping[str, Any] | None,
    trusted: Sequence[str] = (),
    *,
    user: str | None = None,
    credential: str | None = None,
) -> str:
    """Who a request's work counts for, whatever door it came through.

    ``credential`` (an API key's id ``key:<id>`` or a login token's
    ``user:<name>``, core.security.auth.api_identity) first, then a logged-in
    ``user`` (``user:<name>``), else the client's address ``ip:<address>``
    (core.security.clients.client_address: the socket peer, or what a proxy of
    FORWARDED_ALLOW_IPS, ``trusted``, forwarded). A chat's session id is the
    client's own choice, so it is never the key.
    """
    if credential:
        return credential
    if user:
        return f"user:{user}"
    return f"ip:{client_address(scope or {}, trusted)}"


def queue_turn(client: str, session: str | None = None) -> str:
    """Whose turn a job waits for in the fair queue: ``client``, except that
    an anonymous chat session (``client`` an address) has a turn of its own,
    so people behind one address do not wait for each other."""
    if session and client.startswith("ip:"):
        return f"session:{session}"
    return client
