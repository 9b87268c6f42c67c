#!/usr/bin/env bash
# Create .venv-ls with the Label Studio SDK (requirements-labelstudio.txt) that
# tests/test_export_labelstudio.py reads the labelstudio export back with. Its
# own venv: the SDK pins opencv-python-headless<4.13, which conflicts with
# requirements.txt. A no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv-ls/bin/python ]; then
  echo "setup: creating .venv-ls (Label Studio SDK, tests only)"
  "$PYTHON" -m venv .venv-ls
fi
stamp=.venv-ls/.requirements.sha256
want=$(sha256sum requirements-labelstudio.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing requirements-labelstudio.txt into .venv-ls"
  .venv-ls/bin/python -m pip install --disable-pip-version-check -q \
    -r requirements-labelstudio.txt
  echo "$want" > "$stamp"
fi
