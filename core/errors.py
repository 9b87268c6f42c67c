"""Errors whose messages are safe to show in the chat and in API responses.

Each message tells the user what went wrong and, where there is one, the fix.
"""

from __future__ import annotations


class AppError(Exception):
    """Base class: ``code`` is machine-readable, ``http_status`` for the API."""

    code = "app_error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserInputError(AppError):
    code = "bad_request"
    http_status = 400


class ImageError(UserInputError):
    """The bytes are not an image we can read, or one that is too big."""

    code = "bad_image"
    http_status = 415


class PayloadTooLargeError(UserInputError):
    code = "payload_too_large"
    http_status = 413


class ModelUnavailableError(AppError):
    """Weights or the VAE could not be loaded; the message says what to do."""

    code = "model_unavailable"
    http_status = 503


class BusyError(AppError):
    """The model queue is full; ``retry_after_s`` tells when to come back."""

    code = "busy"
    http_status = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimitedError(AppError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnauthorizedError(AppError):
    code = "unauthorized"
    http_status = 401


class UnsupportedMediaError(UserInputError):
    code = "unsupported_media_type"
    http_status = 415


class ModelNotAllowedError(AppError):
    code = "model_not_allowed"
    http_status = 403


class ModelNotLoadedError(AppError):
    code = "model_not_loaded"
    http_status = 409


class ModelLoadingError(BusyError):
    """The model is not loaded yet (503 with Retry-After)."""

    code = "model_loading"


class UrlRefusedError(UserInputError):
    """The URL is not one this server may fetch (scheme, host, address)."""

    code = "url_refused"
    http_status = 403


class UrlFetchError(UserInputError):
    """The URL was allowed but fetching it failed (DNS, connection, status)."""

    code = "url_fetch_failed"
    http_status = 422


class ModelNotFoundError(UserInputError):
    """An OpenAI-compatible request named a model this server does not serve."""

    code = "model_not_found"
    http_status = 404


class LinkRefusedError(UserInputError):
    """A signed file link that is forged, expired or no longer stored."""

    code = "link_refused"
    http_status = 403


class ClientQueueFullError(RateLimitedError):
    """This client already has its share of queued requests (QUEUE_PER_CLIENT)."""

    code = "queue_full"


class RequestCancelledError(AppError):
    """The request was abandoned (client gone, Stop, timeout) and not finished.

    499 is nginx's "client closed request": nobody is usually left to read it.
    """

    code = "cancelled"
    http_status = 499
