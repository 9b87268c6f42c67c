"""Fault tests start the real server with the end-to-end fixture (not a copy)."""

from __future__ import annotations

from tests.e2e.conftest import app_server  # noqa: F401  (a fixture, reused)
