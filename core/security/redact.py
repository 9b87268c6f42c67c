"""Keep credentials and local paths out of what clients see.

``/health``, ``/ready``, API errors and chat messages pass through ``redact``:
``user:password@`` in URLs becomes ``***@`` and absolute filesystem paths keep
only their last part (``…/vae-oid.npz``). The log keeps the full text.
"""

from __future__ import annotations

import re

# "://" may carry the word joiner of core.security.markdown (already escaped text).
# Linear time on any text (model answers included): the scheme's run of
# [a-z0-9+.-] is read once, from its first character, and must hold a letter
# at a word start (the scheme's); what is kept before "***@" is the same.
_USERINFO = re.compile(
    r"(?i)(?<![a-z0-9+.-])(?=[a-z0-9+.-]*?\b[a-z])([a-z0-9+.-]*+:\u2060?//)[^/\s@]+@"
)
_QUERY_SECRET = re.compile(r"(?i)([?&](?:api[_-]?key|token|key|password)=)[^&\s]+")
# An absolute path's folders: from a "/" (or "~/", "C:\\") not preceded by a word
# char or "/" (URL paths stay) and not starting "//" (a URL's host).
_PATH = re.compile(
    r"(?<![\w/.~-])(?:~|[A-Za-z]:)?[/\\](?![/\\])(?:[^\s'\"`<>|,;()/\\]+[/\\])+"
)
_ROOTS = frozenset(
    "app data home media mnt opt private root srv tmp Users usr var work".split()
)


def _folders(match: re.Match[str]) -> str:
    """Route-like ``/v1/`` stays; deeper or well-known roots become ``…/``."""
    parts = [p for p in re.split(r"[/\\]", match.group(0)) if p]
    deep = len(parts) >= 2 or match.group(0).startswith(("~", "\\"))
    known = bool(parts) and parts[0] in _ROOTS
    return "…/" if deep or known or ":" in parts[0] else match.group(0)


def redact(text: object) -> str:
    """``text`` without URL credentials, secret query values or path folders."""
    cleaned = _USERINFO.sub(r"\1***@", str(text))
    cleaned = _QUERY_SECRET.sub(r"\1***", cleaned)
    return _PATH.sub(_folders, cleaned)
