"""Shared fixtures: settings, a fake model, a synthetic VAE, a tiny PaliGemma 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from tests.support.fakes import FakeModel


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), load_on_start=False)


@pytest.fixture(scope="session")
def synthetic_vae_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded vae-oid.npz with the real key names and shapes."""
    from scripts.make_synthetic_vae import write_synthetic_vae

    path = tmp_path_factory.mktemp("vae") / "vae-oid.npz"
    write_synthetic_vae(path, seed=0)
    return path


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random PaliGemma 2 checkpoint, built offline once per session."""
    from scripts.make_tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-paligemma2")
    build_tiny_model(out, seed=0)
    return out
