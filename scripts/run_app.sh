#!/usr/bin/env bash
# Set everything up and start the chat at http://localhost:8010 (HOST/PORT in .env).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m scripts.serve "$@"
