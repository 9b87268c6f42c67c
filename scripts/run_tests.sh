#!/usr/bin/env bash
# Set everything up (venv, requirements, Chromium for the browser tests) and run
# the linter and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_labelstudio.sh  # the SDK that reads the Label Studio export back
# System packages the tests use: Chromium (browser tests) and a PostgreSQL server
# (tests/e2e/test_persistence_e2e.py and tests/security/test_thread_ids.py run
# their history tests on PostgreSQL too).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's ${missing[*]} for the browser and history tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: ${missing[*]} not found and cannot install (need root + apt-get):" \
      "browser tests fail without chromium; PostgreSQL history tests are skipped" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -ra "$@"
