"""Logging setup: the only place that configures handlers."""

from __future__ import annotations

import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Send records of this app's loggers to stderr at ``level``.

    Adds a stderr handler to the root logger only when it has none: under
    ``chainlit run`` Chainlit has already put one there. Idempotent.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    for name in (
        "core",
        "chainlit_app",
        "chat",
        "api",
        "cli",
        "web",
        "__main__",
    ):
        logging.getLogger(name).setLevel(level.upper())
    # jax says at INFO that it found no TPU: noise on every start.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
