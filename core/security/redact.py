"""Keep credentials and local paths out of what clients see.

Every string that leaves the process passes through ``redact`` at its door
(api.request.error_json for REST errors, the SSE writer of
api.openai_routes, the chat's emitter filter in chat.security):
``user:password@`` in URLs becomes ``***@``, secret query values
(``api_key=``, ``token=``, ``sig=``, ...) become ``***`` and absolute
filesystem paths keep only their last part (``…/vae-oid.npz``). Model ids are
shown by name (``shown_model_id``): a local folder's last part, never its path.
The log keeps the full text.
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
SECRET_PARAMS = (
    "access_token|api[_-]?key|apikey|auth|client_secret|credential|key"
    "|passwd|password|pwd|refresh_token|secret|sig|signature|token"
    "|x-amz-signature|x-goog-signature"
)
_QUERY_SECRET = re.compile(
    rf"(?i)([?&;](?:[\w.-]*[_-])?(?:{SECRET_PARAMS})=)[^&#\s\"'<>)\]]+"
)
# An absolute path's folders: from a "/" (or "~/", "C:\\") not preceded by a word
# char or "/" (URL paths stay) and not starting "//" (a URL's host).
_PATH = re.compile(
    r"(?<![\w/.~-])(?:~|[A-Za-z]:)?[/\\](?![/\\])(?:[^\s'\"`<>|,;()/\\]+[/\\])+"
)
_ROOTS = frozenset(
    "app data home media mnt opt private root srv tmp Users usr var work".split()
)
_LOCAL = re.compile(r"^(?:[/\\.~]|[A-Za-z]:[/\\])")  # "/x", "./x", "~/x", "C:\\x"
REPLAY = "replay:"


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


def shown_model_id(model_id: str | None) -> str | None:
    """The name clients see for ``model_id``: a local folder or recording by
    its last part (``/tmp/x/tiny-pg2`` -> ``tiny-pg2``, ``replay:/a/rec.json``
    -> ``replay:rec.json``); hub ids (``google/paligemma2-3b-mix-448``) as
    they are; anything else redacted."""
    if not model_id:
        return model_id
    prefix, rest = ("", model_id)
    if model_id.startswith(REPLAY):
        prefix, rest = REPLAY, model_id[len(REPLAY) :]
    if _LOCAL.match(rest) or rest.count("/") > 1 or "\\" in rest:
        last = re.split(r"[/\\]", rest.rstrip("/\\"))[-1]
        return prefix + (last if last not in ("", ".", "..", "~") else "local")
    return redact(model_id)
