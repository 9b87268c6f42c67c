"""Settings: the only place that reads the environment.

Every setting, its default and meaning is listed in ``.env.example``; the
checks a value must pass are in ``core.config_checks``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.config_checks import check_settings

MB = 1024 * 1024  # the unit of every *_MB setting (MAX_UPLOAD_MB, IMAGE_URL_MAX_MB)

DEFAULT_MODEL_CPU = "google/paligemma2-3b-mix-224"
DEFAULT_MODEL_CUDA = "google/paligemma2-3b-mix-448"
VAE_REPO_ID = "big-vision/paligemma-hf"
VAE_FILENAME = "vae-oid.npz"
VAE_SHA256 = "5586010257b8536dddefab65e7755077f21d5672d5674dacf911f73ae95a4447"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # ALLOWED_HOSTS default


def default_model_id(device: str) -> str:
    """The checkpoint used when MODEL_ID is not set: 448 px on CUDA, 224 on CPU."""
    return DEFAULT_MODEL_CUDA if device == "cuda" else DEFAULT_MODEL_CPU


def resolve_device(device: str) -> str:
    """DEVICE with "auto" resolved: "cuda" when torch sees a GPU, else "cpu".

    Imports torch only for "auto" (the local backend imports it anyway).
    """
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def _path(value: str) -> str:
    return str(Path(value).expanduser())


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """Application settings. ``None`` means "decide automatically"."""

    model_id: str | None = None  # MODEL_ID; None: default_model_id(device)
    model_allowlist: tuple[str, ...] = ()  # MODEL_ALLOWLIST, comma separated
    models: tuple[str, ...] = ()  # MODELS: checkpoints to preload; first = default
    device: str = "auto"  # DEVICE: auto | cpu | cuda
    dtype: str = "auto"  # DTYPE: auto | float32 | bfloat16 | float16
    vae_path: str | None = None  # VAE_PATH; None: download once into data_dir
    hf_token: str | None = field(default=None, repr=False)  # HF_TOKEN
    max_new_tokens: int | None = None  # MAX_NEW_TOKENS; None: sized per request
    host: str = "127.0.0.1"  # HOST: loopback only unless set (Docker: 0.0.0.0)
    port: int = 8010  # PORT
    log_level: str = "INFO"  # LOG_LEVEL
    data_dir: str = str(Path.home() / ".cache" / "paligemma-chat")  # DATA_DIR
    max_upload_mb: int = 20  # MAX_UPLOAD_MB
    max_image_pixels: int = 40_000_000  # MAX_IMAGE_PIXELS
    max_prompt_chars: int = 2000  # MAX_PROMPT_CHARS
    rate_limit_per_min: int = 30  # RATE_LIMIT: requests/minute per session
    load_on_start: bool = True  # LOAD_ON_START: background load at start
    queue_max: int = 16  # QUEUE_MAX: requests waiting or running before "busy"
    request_timeout_s: float = 900.0  # REQUEST_TIMEOUT_S: wait for one request
    disconnect_grace_s: float = 20.0  # DISCONNECT_GRACE_S: a dropped chat socket
    queue_per_client: int = 4  # QUEUE_PER_CLIENT: one API client's queued requests
    api_key: str | None = field(default=None, repr=False)  # API_KEY: Bearer <key>
    allow_image_url: bool = False  # ALLOW_IMAGE_URL: let /segment fetch image_url
    image_url_allowlist: tuple[str, ...] = ()  # IMAGE_URL_ALLOWLIST: hosts, "*."
    image_url_max_mb: int = 10  # IMAGE_URL_MAX_MB: largest fetched image
    image_url_timeout_s: float = 10.0  # IMAGE_URL_TIMEOUT_S: whole fetch
    max_images_per_request: int = 16  # MAX_IMAGES_PER_REQUEST: /v1/analyze files
    quantization: str = "none"  # QUANTIZATION: none | int8 | int4 (CUDA only)
    backend: str = "local"  # BACKEND: local (transformers) | openai (vLLM server)
    backend_url: str | None = field(default=None, repr=False)  # BACKEND_URL (openai)
    backend_api_key: str | None = field(default=None, repr=False)  # BACKEND_API_KEY
    backend_timeout_s: float = 120.0  # BACKEND_TIMEOUT_S: one engine request
    auth_users: tuple[str, ...] = field(default=(), repr=False)  # AUTH_USERS
    persist: str = "auto"  # PERSIST: auto (on with AUTH_USERS) | on | off
    database_url: str | None = field(default=None, repr=False)  # DATABASE_URL
    auth_secret: str | None = field(default=None, repr=False)  # CHAINLIT_AUTH_SECRET
    session_hours: float = 24.0  # SESSION_HOURS: login lifetime, no renewal
    login_rate_limit: int = 10  # LOGIN_RATE_LIMIT: /login tries/min per IP and name
    # Web security (docs/security.md)
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS  # ALLOWED_HOSTS: Host header names
    allowed_origins: tuple[str, ...] = ()  # ALLOWED_ORIGINS: extra browser origins
    max_files_per_message: int = 10  # MAX_FILES_PER_MESSAGE: chat uploads at once
    uploads_per_session_max: int = 50  # UPLOADS_PER_SESSION_MAX: anonymous; 0: any
    uploads_total_mb: int = 2048  # UPLOADS_TOTAL_MB: Chainlit's .files; 0: any
    image_url_ports: tuple[int, ...] = (80, 443)  # IMAGE_URL_PORTS (allowlist "*")
    forwarded_allow_ips: tuple[str, ...] = ()  # FORWARDED_ALLOW_IPS: proxies' IPs
    # Memory caps (issue 13 item 7); operators may raise them.
    max_detections: int = 100  # MAX_DETECTIONS: objects kept per image
    max_concurrent_decodes: int = 2  # MAX_CONCURRENT_DECODES: image decodes at once
    max_new_tokens_limit: int = 1024  # MAX_NEW_TOKENS_LIMIT: most a client may ask
    # Throughput (core/engine/batcher.py, compiled.py; docs in README)
    batch_max: int | None = None  # BATCH_MAX; None: 8 CUDA, 1 CPU, 32 openai
    compile: str = "auto"  # COMPILE: auto (on with CUDA) | on | off
    compile_backend: str = "inductor"  # COMPILE_BACKEND: torch.compile backend
    backend_image_px: int | None = None  # BACKEND_IMAGE_PX; None: from model id
    # Faults (issue 25): readiness probes and read deadlines (docs/security.md)
    ready_probe_s: float = 5.0  # READY_PROBE_S: /ready reuses a probe this long
    ready_probe_timeout_s: float = 2.0  # READY_PROBE_TIMEOUT_S: one probe's wait
    read_timeout_s: float = 30.0  # READ_TIMEOUT_S: headers, and a body's start
    read_min_rate_kb: float = 32.0  # READ_MIN_RATE_KB: KB/s a long body keeps up
    history_write_timeout_s: float = 5.0  # HISTORY_WRITE_TIMEOUT_S: one DB statement
    # Video (core/video): clips are sampled, each sampled frame is one model run
    video_max_mb: int = 100  # VIDEO_MAX_MB: largest clip upload
    video_max_seconds: float = 120.0  # VIDEO_MAX_SECONDS: longest clip
    video_fps: float = 0.5  # VIDEO_FPS: frames sampled per second of clip
    video_max_frames: int = 60  # VIDEO_MAX_FRAMES: most frames sampled per clip

    def __post_init__(self) -> None:
        check_settings(self)  # ValueError naming the variable and its range

    @property
    def model_ids(self) -> tuple[str | None, ...]:
        """The checkpoints to serve, default first: MODELS, else (MODEL_ID,);
        None means default_model_id(device)."""
        return self.models or (self.model_id,)

    def batch_size(self, device: str) -> int:
        """Requests one model run serves at once on ``device`` (cpu | cuda):
        BATCH_MAX, or 8 on CUDA and 1 on CPU; for BACKEND=openai, the requests
        kept in flight to the engine (default 32, its --max-num-seqs)."""
        if self.batch_max is not None:
            return self.batch_max
        if self.backend == "openai":
            return 32
        return 8 if device == "cuda" else 1

    @property
    def model_workers(self) -> int:
        """Requests the model queue runs at once: the engine's batch size
        (``batch_size``), so that concurrent requests can share a batch."""
        if self.backend != "openai" and (self.model_id or "").startswith("replay:"):
            return 1  # the replay model answers at once; no torch import
        device = "remote" if self.backend == "openai" else resolve_device(self.device)
        return min(self.queue_max, self.batch_size(device))

    @property
    def vae_cache_path(self) -> Path:
        """Where the downloaded vae-oid.npz is kept when VAE_PATH is not set."""
        return Path(self.data_dir) / VAE_FILENAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: ``os.environ``).

        Raises ValueError naming the variable when a value does not parse.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, env_name, convert in _ENV_FIELDS:
            raw = env.get(env_name)
            if raw is None or (raw.strip() == "" and name != "hf_token"):
                continue
            if raw.strip().lower() == "auto" and name in _AUTO_NONE:
                continue
            try:
                values[name] = convert(raw.strip())
            except ValueError as exc:
                raise ValueError(f"{env_name}: {exc}") from exc
        if values.get("hf_token") == "":
            values.pop("hf_token")
        return cls(**values)  # type: ignore[arg-type]


def _ports(value: str) -> tuple[int, ...]:
    return tuple(int(item) for item in _list(value))


_AUTO_NONE = {"model_id", "max_new_tokens", "vae_path", "batch_max", "backend_image_px"}

_ENV_FIELDS: tuple[tuple[str, str, object], ...] = (
    ("model_id", "MODEL_ID", str),
    ("model_allowlist", "MODEL_ALLOWLIST", _list),
    ("models", "MODELS", _list),
    ("device", "DEVICE", str.lower),
    ("dtype", "DTYPE", str.lower),
    ("vae_path", "VAE_PATH", str),
    ("hf_token", "HF_TOKEN", str),
    ("max_new_tokens", "MAX_NEW_TOKENS", int),
    ("host", "HOST", str),
    ("port", "PORT", int),
    ("log_level", "LOG_LEVEL", str.upper),
    ("data_dir", "DATA_DIR", _path),
    ("max_upload_mb", "MAX_UPLOAD_MB", int),
    ("max_image_pixels", "MAX_IMAGE_PIXELS", int),
    ("max_prompt_chars", "MAX_PROMPT_CHARS", int),
    ("rate_limit_per_min", "RATE_LIMIT", int),
    ("load_on_start", "LOAD_ON_START", _bool),
    ("queue_max", "QUEUE_MAX", int),
    ("request_timeout_s", "REQUEST_TIMEOUT_S", float),
    ("disconnect_grace_s", "DISCONNECT_GRACE_S", float),
    ("queue_per_client", "QUEUE_PER_CLIENT", int),
    ("api_key", "API_KEY", str),
    ("allow_image_url", "ALLOW_IMAGE_URL", _bool),
    ("image_url_allowlist", "IMAGE_URL_ALLOWLIST", _list),
    ("image_url_max_mb", "IMAGE_URL_MAX_MB", int),
    ("image_url_timeout_s", "IMAGE_URL_TIMEOUT_S", float),
    ("max_images_per_request", "MAX_IMAGES_PER_REQUEST", int),
    ("quantization", "QUANTIZATION", str.lower),
    ("backend", "BACKEND", str.lower),
    ("backend_url", "BACKEND_URL", str),
    ("backend_api_key", "BACKEND_API_KEY", str),
    ("backend_timeout_s", "BACKEND_TIMEOUT_S", float),
    ("auth_users", "AUTH_USERS", _list),
    ("persist", "PERSIST", str.lower),
    ("database_url", "DATABASE_URL", str),
    ("auth_secret", "CHAINLIT_AUTH_SECRET", str),
    ("session_hours", "SESSION_HOURS", float),
    ("login_rate_limit", "LOGIN_RATE_LIMIT", int),
    ("allowed_hosts", "ALLOWED_HOSTS", _list),
    (
        "allowed_origins",
        "ALLOWED_ORIGINS",
        lambda v: tuple(o.rstrip("/") for o in _list(v)),
    ),
    ("max_files_per_message", "MAX_FILES_PER_MESSAGE", int),
    ("uploads_per_session_max", "UPLOADS_PER_SESSION_MAX", int),
    ("uploads_total_mb", "UPLOADS_TOTAL_MB", int),
    ("image_url_ports", "IMAGE_URL_PORTS", _ports),
    ("forwarded_allow_ips", "FORWARDED_ALLOW_IPS", _list),
    ("max_detections", "MAX_DETECTIONS", int),
    ("max_concurrent_decodes", "MAX_CONCURRENT_DECODES", int),
    ("max_new_tokens_limit", "MAX_NEW_TOKENS_LIMIT", int),
    ("batch_max", "BATCH_MAX", int),
    ("compile", "COMPILE", str.lower),
    ("compile_backend", "COMPILE_BACKEND", str),
    ("backend_image_px", "BACKEND_IMAGE_PX", int),
    ("ready_probe_s", "READY_PROBE_S", float),
    ("ready_probe_timeout_s", "READY_PROBE_TIMEOUT_S", float),
    ("read_timeout_s", "READ_TIMEOUT_S", float),
    ("read_min_rate_kb", "READ_MIN_RATE_KB", float),
    ("history_write_timeout_s", "HISTORY_WRITE_TIMEOUT_S", float),
    ("video_max_mb", "VIDEO_MAX_MB", int),
    ("video_max_seconds", "VIDEO_MAX_SECONDS", float),
    ("video_fps", "VIDEO_FPS", float),
    ("video_max_frames", "VIDEO_MAX_FRAMES", int),
)
