"""Start the Chainlit app with HOST/PORT from the settings (.env honoured)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import load_dotenv

from core.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> None:
    load_dotenv(ROOT / ".env")
    settings = Settings.from_env()
    chainlit = Path(sys.executable).with_name("chainlit")
    args = [
        str(chainlit),
        "run",
        str(ROOT / "chainlit_app.py"),
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--headless",
        *argv,
    ]
    os.chdir(ROOT)
    os.execv(args[0], args)


if __name__ == "__main__":
    main(sys.argv[1:])
