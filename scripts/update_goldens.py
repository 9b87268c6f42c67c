"""Regenerate the golden PNGs that tests/test_render.py compares pixel by pixel.

Run after an intended change to the drawing code, then look at the images:

    python -m scripts.update_goldens

The scene is built in code (seeded, no files), so the test and this script
draw exactly the same thing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.render import render_overlay
from core.types import Detection

logger = logging.getLogger(__name__)

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"
OVERLAY_GOLDEN = "overlay.png"
SCENE_SIZE_WH = (320, 240)


def golden_scene() -> tuple[Image.Image, list[Detection], dict[str, Any]]:
    """The golden overlay's input: (RGB image, detections, render kwargs).

    A 320x240 gradient with four objects: a small square mask listed before
    the big ellipse that contains it (largest-first drawing keeps it visible),
    a box-only object touching the top edge (label inside the image) and an
    unlabelled disc near the right edge.
    """
    width, height = SCENE_SIZE_WH
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 96)],
        axis=-1,
    ).astype(np.uint8)
    image = Image.fromarray(pixels)

    ellipse = ((xx - 120) / 90.0) ** 2 + ((yy - 140) / 70.0) ** 2 <= 1.0
    square = (xx >= 100) & (xx < 140) & (yy >= 120) & (yy < 160)
    disc = (xx - 275) ** 2 + (yy - 190) ** 2 <= 30**2
    detections = [
        Detection("wheel", (100, 120, 140, 160), square),  # listed before the car
        Detection("car | red", (30, 70, 211, 211), ellipse),
        Detection("sign", (200, 0, 300, 60), None),
        Detection(None, (245, 160, 306, 221), disc),
    ]
    return image, detections, {"opacity": 0.5}


def render_golden_overlay() -> Image.Image:
    """Render the golden scene with the current drawing code."""
    image, detections, kwargs = golden_scene()
    return render_overlay(image, detections, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=GOLDEN_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / OVERLAY_GOLDEN
    render_golden_overlay().save(path, format="PNG")
    logger.info("Wrote %s", path)


if __name__ == "__main__":
    main()
