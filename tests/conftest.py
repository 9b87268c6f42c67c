"""Shared fixtures: settings, a fake model, a synthetic VAE, a tiny PaliGemma 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from tests.fakes import FakeModel

# Recorded PaliGemma outputs (see issue 3).
SHOE_DETECT = "<loc0051><loc0309><loc0708><loc0646> shoe"
WHEELS_SEGMENT = (
    "<loc0591><loc0157><loc0794><loc0311> <seg092><seg004><seg044><seg092><seg120>"
    "<seg061><seg029><seg120><seg090><seg023><seg021><seg090><seg015><seg041>"
    "<seg044><seg073> right wheel ; <loc0586><loc0728><loc0794><loc0882> <seg092>"
    "<seg004><seg089><seg092><seg120><seg048><seg054><seg038><seg119><seg029>"
    "<seg021><seg090><seg095><seg041><seg044><seg073> right wheel"
)
WHEELS_BOXES_PX = [(98, 277, 194, 372), (455, 275, 551, 372)]  # 640x480 image

# Answers for the replay model (MODEL_ID=replay:<json>) in end-to-end tests.
REPLAY_SEGS = "".join(
    f"<seg{v:03d}>"
    for v in (5, 17, 99, 3, 64, 64, 12, 8, 101, 90, 33, 7, 0, 127, 45, 60)
)
REPLAY_CAT = f"<loc0100><loc0100><loc0700><loc0500> {REPLAY_SEGS} cat"
REPLAY_DOG = f"<loc0200><loc0550><loc0900><loc0950> {REPLAY_SEGS} dog"
REPLAY_RECORDING = {
    "segment cat": REPLAY_CAT,
    "segment cat ; dog": f"{REPLAY_CAT} ; {REPLAY_DOG}",
    "detect cat ; dog": "<loc0100><loc0100><loc0700><loc0500> cat ; "
    "<loc0200><loc0550><loc0900><loc0950> dog",
    "detect cat": "<loc0100><loc0100><loc0700><loc0500> cat",
    "detect car": "<loc0300><loc0100><loc0800><loc0900> car",
}


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

    from tests.browser import launch_chromium

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
