"""The one server-starting fixture of the end-to-end tests: ``app_server``.

A new end-to-end test needs no fixture of its own::

    @pytest.fixture(scope="module")
    def server(app_server):
        return app_server(recording={"segment cat": CAT}, RATE_LIMIT="5")

``app_server(**env)`` starts ``chainlit run chainlit_app.py`` on a free
loopback port with the defaults below plus ``env``, waits until /ready says
the model and VAE are loaded, and stops every server it started when the test
module ends (a test may ``stop()`` one earlier, e.g. to restart on the same
DATA_DIR). Built on ``tests.support.chat_client.start_server``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.chat_client import ServerProcess, start_server

AppServer = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def app_server(
    request: pytest.FixtureRequest,
    synthetic_vae_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppServer]:
    """A factory: ``app_server(recording=None, name="server", ready=True, **env)``.

    Defaults: the tiny random PaliGemma 2 (built once per session, only when a
    server uses it), the synthetic VAE, a fresh DATA_DIR, HF_HUB_OFFLINE=1.
    ``recording`` (prompt -> raw PaliGemma answer) switches MODEL_ID to the
    replay model, so everything after ``generate`` is the production path.
    ``folder`` reuses a folder (a restart on the same DATA_DIR and logs).
    The returned server has ``.folder`` and ``.data_dir``.
    """
    started: list[ServerProcess] = []

    def start(
        *,
        recording: dict[str, str] | None = None,
        name: str = "server",
        ready: bool = True,
        folder: Path | None = None,
        **env: str,
    ) -> ServerProcess:
        folder = folder or tmp_path_factory.mktemp(name)
        defaults = {
            "VAE_PATH": str(synthetic_vae_path),
            "DATA_DIR": str(folder / "data"),
            "HF_HUB_OFFLINE": "1",
        }
        if recording is not None:
            path = folder / "recording.json"
            path.write_text(json.dumps(recording), encoding="utf-8")
            defaults["MODEL_ID"] = f"replay:{path}"
        elif "MODEL_ID" not in env:
            defaults["MODEL_ID"] = str(request.getfixturevalue("tiny_model_dir"))
        full_env = {**defaults, **env}
        server = start_server(full_env, folder / f"{name}.log")
        started.append(server)
        server.folder = folder
        server.data_dir = Path(full_env["DATA_DIR"])
        if ready:
            server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()
