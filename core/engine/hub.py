"""Failed Hugging Face loads -> chat-safe messages that name the fix."""

from __future__ import annotations

from pathlib import Path

LOCAL_FIX = "or set MODEL_ID=/path/to/a/local/copy"


def is_local_path(model_id: str) -> bool:
    """True when MODEL_ID names a folder rather than a Hugging Face id."""
    return model_id.startswith(("/", ".", "~")) or Path(model_id).expanduser().exists()


def exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_HUB_MESSAGES = {
    "gated": "The model {m} is gated on Hugging Face and could not be downloaded "
    "with the current token: set HF_TOKEN to a token of an account that accepted "
    "the PaliGemma license at https://huggingface.co/{m}, " + LOCAL_FIX + ".",
    "missing": "The model {m} could not be downloaded: Hugging Face has no such "
    "model for this token (check MODEL_ID; private or gated models need HF_TOKEN), "
    + LOCAL_FIX
    + ".",
    "offline": "The model {m} could not be downloaded (no network, or offline mode "
    "via HF_HUB_OFFLINE) and is not in the local Hugging Face cache: connect once "
    "to download it (PaliGemma is gated: set HF_TOKEN to a token of an account "
    "that accepted the license at https://huggingface.co/{m}), " + LOCAL_FIX + ".",
    "other": "The model {m} could not be loaded ({reason}). Check MODEL_ID, "
    + LOCAL_FIX
    + ".",
}


def hub_error_message(model_id: str, exc: BaseException) -> str:
    """A chat-safe message with the fix for a failed Hugging Face load.

    Looks through the exception chain, since transformers wraps the
    huggingface_hub errors in OSError.
    """
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    chain = exception_chain(exc)
    statuses = {getattr(getattr(e, "response", None), "status_code", 0) for e in chain}
    offline = (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError)
    if any(isinstance(e, GatedRepoError) or "gated repo" in str(e) for e in chain):
        kind = "gated"
    elif any(isinstance(e, RepositoryNotFoundError) for e in chain):
        kind = "missing"
    elif statuses & {401, 403}:
        kind = "gated"
    elif any(
        isinstance(e, offline) or type(e).__module__.startswith("httpx") for e in chain
    ):
        kind = "offline"
    else:
        kind = "other"
    reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    return _HUB_MESSAGES[kind].format(m=model_id, reason=reason)
