#!/usr/bin/env bash
# Create .venv and install the pinned requirements; a no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing requirements.txt into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
  echo "$want" > "$stamp"
fi
