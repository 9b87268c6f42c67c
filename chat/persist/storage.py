"""Chainlit's storage interface on the local disk, with signed read URLs.

Chainlit's data layer copies every element a chat shows (uploaded photos,
overlays, downloads) into a storage client under an ``object_key`` like
``<user id>/<element id>/<name>``, and asks it for a URL when a thread is
shown again. ``LocalStorageClient`` keeps those files under one folder and
hands out URLs signed with HMAC-SHA256 that expire, like S3's presigned URLs;
``install_file_route`` serves them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import mimetypes
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chainlit.data.storage_clients.base import BaseStorageClient, storage_expiry_time

logger = logging.getLogger(__name__)

URL_PREFIX = "/persisted-files"
# Shown inline in the chat; anything else is sent as an attachment, so a file
# named "x.html" can never run as a page on this origin.
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"}
)


class LocalStorageClient(BaseStorageClient):
    """Files under ``root``; read URLs valid for ``expiry_s`` seconds."""

    def __init__(
        self,
        root: str | Path,
        secret: str,
        *,
        url_prefix: str = URL_PREFIX,
        expiry_s: int = storage_expiry_time,
    ) -> None:
        if not secret:
            raise ValueError("LocalStorageClient needs a non-empty signing secret")
        self.root = Path(root).resolve()
        self.url_prefix = url_prefix.rstrip("/")
        self.expiry_s = int(expiry_s)
        self._key = hashlib.sha256(b"persisted-files\0" + secret.encode()).digest()

    def path_for(self, object_key: str) -> Path:
        """The file of ``object_key``; ValueError for keys that leave ``root``."""
        parts = object_key.split("/")
        if (
            not object_key
            or "\\" in object_key
            or "\0" in object_key
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ValueError(
                f"object keys are relative 'a/b/c' paths, got {object_key!r}"
            )
        path = (self.root / object_key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"object key {object_key!r} leaves the storage folder")
        return path

    async def upload_file(
        self,
        object_key: str,
        data: bytes | str,
        mime: str = "application/octet-stream",
        overwrite: bool = True,
        content_disposition: str | None = None,
    ) -> dict[str, Any]:
        path = self.path_for(object_key)
        if path.exists() and not overwrite:
            logger.warning("not overwriting stored file %s", object_key)
            return {}
        payload = data.encode() if isinstance(data, str) else data
        await asyncio.to_thread(_write, path, payload)
        return {"object_key": object_key, "url": await self.get_read_url(object_key)}

    async def delete_file(self, object_key: str) -> bool:
        path = self.path_for(object_key)
        if not path.is_file():
            return False
        await asyncio.to_thread(_delete, path, self.root)
        return True

    async def get_read_url(self, object_key: str) -> str:
        expires = int(time.time()) + self.expiry_s
        signature = self.sign(object_key, expires)
        return f"{self.url_prefix}/{quote(object_key)}?exp={expires}&sig={signature}"

    async def close(self) -> None:
        return None

    def sign(self, object_key: str, expires: int) -> str:
        """Hex HMAC-SHA256 of the key and its expiry time (unix seconds)."""
        message = f"{object_key}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, object_key: str, expires: int, signature: str) -> bool:
        """True when the signature is ours and has not expired."""
        if expires < time.time():
            return False
        return hmac.compare_digest(self.sign(object_key, expires), signature)


def _write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(path.name + ".part")
    draft.write_bytes(payload)
    draft.replace(path)


def _delete(path: Path, root: Path) -> None:
    """Remove ``path`` and the folders it leaves empty, up to ``root``."""
    path.unlink(missing_ok=True)
    folder = path.parent
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty
            break
        folder = folder.parent


def media_headers(path: Path) -> tuple[str, dict[str, str]]:
    """(media type, extra headers) to serve a stored file safely."""
    guessed, _ = mimetypes.guess_type(path.name)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private"}
    if guessed in INLINE_TYPES:
        return guessed, headers
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(path.name)}"
    return "application/octet-stream", headers


def install_file_route(app, storage: LocalStorageClient) -> None:
    """Serve ``GET <url_prefix>/<key>?exp=&sig=`` in front of Chainlit's catch-all.

    Answers 403 for a bad or expired signature, 404 for a missing file.
    """
    from fastapi import APIRouter, HTTPException
    from fastapi.responses import FileResponse

    router = APIRouter()

    @router.get(storage.url_prefix + "/{object_key:path}")
    async def read_persisted_file(object_key: str, exp: int, sig: str):
        if not storage.verify(object_key, exp, sig):
            raise HTTPException(status_code=403, detail="invalid or expired link")
        try:
            path = storage.path_for(object_key)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        if not path.is_file():
            raise HTTPException(status_code=404, detail="file not found")
        media_type, headers = media_headers(path)
        return FileResponse(path, media_type=media_type, headers=headers)

    before = len(app.router.routes)
    app.include_router(router)
    ours = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = ours  # Chainlit's GET catch-all would shadow it
    logger.info("persisted files served under %s", storage.url_prefix)
