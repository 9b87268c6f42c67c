"""Storage faults in words a user can act on, with no local path in them.

The chat keeps each thread's photos, overlays and state under DATA_DIR. When a
write there fails (``OSError``: full disk, read-only mount, permissions, a
folder that became a file), the answer is still shown and the user gets one
of these instead of the raw error, which names the file.
"""

from __future__ import annotations

import errno
import logging

logger = logging.getLogger(__name__)

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
}


def disk_problem(exc: OSError) -> str:
    """What went wrong, path-free: "the disk is full", "the storage is not
    writable" or "the storage failed (EIO)"."""
    if exc.errno in _FULL:
        return "the disk is full"
    if exc.errno in _NOT_WRITABLE:
        return "the storage is not writable"
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"the storage failed ({name})" if name else "the storage failed"


def not_saved_note(problems: list[str] | tuple[str, ...]) -> str:
    """The chat's note for one or more failed saves of this turn."""
    unique = ", ".join(dict.fromkeys(problems))
    return (
        f"⚠️ Not saved: {unique}. The answer is shown, but it may be missing "
        "when this chat is reopened; it is saved again with the next answer once "
        "the server's storage works (tell whoever runs it)."
    )
