"""The checks ``core.config.Settings`` runs when it is built: each raises
ValueError naming the environment variable, what it must be and what it got."""

from __future__ import annotations

import ipaddress
from typing import Any

Settings = Any  # core.config.Settings; not imported: config imports this module


def check_settings(settings: Settings) -> None:
    """ValueError for the first setting out of its range or set."""
    _check_model_and_server(settings)
    _check_backend(settings)
    _check_login(settings)
    _check_limits(settings)
    _check_models(settings)
    _check_web_security(settings)
    _check_faults(settings)
    _check_throughput(settings)


def _check_model_and_server(s: Settings) -> None:
    if s.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"DEVICE must be auto, cpu or cuda, got {s.device!r}")
    if s.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ValueError(
            f"DTYPE must be auto, float32, bfloat16 or float16, got {s.dtype!r}"
        )
    if not 1 <= s.port <= 65535:
        raise ValueError(f"PORT must be in 1..65535, got {s.port}")
    if s.max_new_tokens is not None and not 1 <= s.max_new_tokens <= 2048:
        raise ValueError(f"MAX_NEW_TOKENS must be in 1..2048, got {s.max_new_tokens}")
    if s.max_images_per_request < 1:
        raise ValueError(
            f"MAX_IMAGES_PER_REQUEST must be >= 1, got {s.max_images_per_request}"
        )
    if s.quantization not in ("none", "int8", "int4"):
        raise ValueError(
            f"QUANTIZATION must be none, int8 or int4, got {s.quantization!r}"
        )


def _check_backend(s: Settings) -> None:
    if s.backend not in ("local", "openai"):
        raise ValueError(f"BACKEND must be local or openai, got {s.backend!r}")
    if s.backend == "openai" and not s.backend_url:
        raise ValueError(
            "BACKEND=openai needs BACKEND_URL, the base URL of an "
            "OpenAI-compatible engine such as vLLM (e.g. http://localhost:8000)"
        )
    if not s.backend_timeout_s > 0:
        raise ValueError(f"BACKEND_TIMEOUT_S must be > 0, got {s.backend_timeout_s}")
    if s.queue_per_client < 1:
        raise ValueError(f"QUEUE_PER_CLIENT must be >= 1, got {s.queue_per_client}")


def _check_login(s: Settings) -> None:
    if s.persist not in ("auto", "on", "off"):
        raise ValueError(f"PERSIST must be auto, on or off, got {s.persist!r}")
    if not 0 < s.session_hours <= 24 * 90:
        raise ValueError(
            f"SESSION_HOURS must be > 0 and <= 2160 (90 days), got {s.session_hours}"
        )
    if s.login_rate_limit < 1:
        raise ValueError(f"LOGIN_RATE_LIMIT must be >= 1, got {s.login_rate_limit}")


def _check_limits(s: Settings) -> None:
    for env_name, value, low, high in (
        ("MAX_DETECTIONS", s.max_detections, 1, 10_000),
        ("MAX_CONCURRENT_DECODES", s.max_concurrent_decodes, 1, 64),
        ("MAX_NEW_TOKENS_LIMIT", s.max_new_tokens_limit, 1, 2048),
        ("UPLOADS_PER_SESSION_MAX", s.uploads_per_session_max, 0, 10**6),
        ("UPLOADS_TOTAL_MB", s.uploads_total_mb, 0, 10**9),
    ):
        if not low <= value <= high:
            raise ValueError(f"{env_name} must be in {low}..{high}, got {value}")
    if not 0 <= s.disconnect_grace_s <= 600:
        raise ValueError(
            f"DISCONNECT_GRACE_S must be in 0..600 seconds, got {s.disconnect_grace_s}"
        )


def _check_models(s: Settings) -> None:
    if len(set(s.models)) != len(s.models):
        raise ValueError(f"MODELS lists a checkpoint twice: {list(s.models)}")
    if s.models and s.model_id and s.model_id not in s.models:
        raise ValueError(
            f"MODEL_ID {s.model_id!r} is not in MODELS {list(s.models)}: "
            "leave MODEL_ID out (the first of MODELS is the default) or list it"
        )


def _check_web_security(settings: Settings) -> None:
    if "*" in settings.allowed_origins:
        raise ValueError(
            "ALLOWED_ORIGINS must list origins such as https://app.example.com, "
            "got '*': a wildcard would let any site use a visitor's login"
        )
    for origin in settings.allowed_origins:
        if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            raise ValueError(
                "ALLOWED_ORIGINS entries must be scheme://host[:port] without a "
                f"path, e.g. https://app.example.com, got {origin!r}"
            )
    if not settings.allowed_hosts:
        raise ValueError("ALLOWED_HOSTS must name at least one host (or '*')")
    if settings.max_files_per_message < 1:
        raise ValueError(
            f"MAX_FILES_PER_MESSAGE must be >= 1, got {settings.max_files_per_message}"
        )
    _check_proxies(settings.forwarded_allow_ips)
    if not all(1 <= port <= 65535 for port in settings.image_url_ports):
        raise ValueError(
            f"IMAGE_URL_PORTS must be ports in 1..65535, got {settings.image_url_ports}"
        )


def _check_proxies(entries: tuple[str, ...]) -> None:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                "FORWARDED_ALLOW_IPS must list your reverse proxies' IP addresses "
                f"or networks (e.g. 127.0.0.1 or 172.16.0.0/12), got {entry!r}: "
                "X-Forwarded-For from anyone else is ignored"
            ) from None


def _check_faults(settings: Settings) -> None:
    for env_name, value, low, high in (
        ("READY_PROBE_S", settings.ready_probe_s, 0.0, 300.0),
        ("READY_PROBE_TIMEOUT_S", settings.ready_probe_timeout_s, 0.1, 60.0),
        ("READ_TIMEOUT_S", settings.read_timeout_s, 0.5, 3600.0),
        ("READ_MIN_RATE_KB", settings.read_min_rate_kb, 0.0, 1_000_000.0),
        ("HISTORY_WRITE_TIMEOUT_S", settings.history_write_timeout_s, 0.1, 300.0),
        ("VIDEO_MAX_MB", settings.video_max_mb, 1, 10_000),
        ("VIDEO_MAX_SECONDS", settings.video_max_seconds, 0.1, 36_000.0),
        ("VIDEO_FPS", settings.video_fps, 0.01, 60.0),
        ("VIDEO_MAX_FRAMES", settings.video_max_frames, 1, 10_000),
    ):
        if not low <= value <= high:
            raise ValueError(f"{env_name} must be in {low:g}..{high:g}, got {value}")


def _check_throughput(s: Settings) -> None:
    if s.batch_max is not None and not 1 <= s.batch_max <= 256:
        raise ValueError(f"BATCH_MAX must be in 1..256, got {s.batch_max}")
    if s.compile not in ("auto", "on", "off"):
        raise ValueError(f"COMPILE must be auto, on or off, got {s.compile!r}")
    if s.backend_image_px is not None and not 64 <= s.backend_image_px <= 2048:
        raise ValueError(
            f"BACKEND_IMAGE_PX must be in 64..2048, got {s.backend_image_px}"
        )
