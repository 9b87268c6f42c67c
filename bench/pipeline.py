"""Time per stage of one request, on the tiny PaliGemma 2 and a synthetic VAE.

Usage: ``python -m bench.pipeline [--repeats N]``; prints JSON. Stages:
preprocess (processor), generate (whole model call, preprocess included),
parse, decode_masks (one batched VAE call), place (masks into the original
image), render (overlay) and encode_jpeg (the image the chat shows);
downloads (overlay PNG, the mask/COCO/YOLO zip) are timed apart. The stages
after generate run on a PaliGemma-style answer with 5 segmented objects on a
1024x768 image, as the issue's target asks; the tiny model's answers are random.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.vae import vae_throughput
from core.config import Settings
from core.engine.local import ModelManager
from core.export import ExportItem, masks_zip
from core.pipeline import Generation, build_result
from core.render import render_overlay, to_jpeg_bytes, to_png_bytes
from core.types import Intent

IMAGE_WH = (1024, 768)
TARGET_OUTSIDE_GENERATE_MS = 50.0
TARGET_VAE_MASKS_PER_S = 300.0
OUTSIDE_GENERATE = ("parse", "decode_masks", "place", "render", "encode_jpeg")


def five_objects_answer(seed: int = 0) -> str:
    """A PaliGemma-style answer with 5 segmented objects (random boxes and codes)."""
    rng = np.random.default_rng(seed)
    objects = []
    for i in range(5):
        y1, x1 = rng.integers(0, 600, size=2)
        y2, x2 = y1 + rng.integers(100, 400), x1 + rng.integers(100, 400)
        locs = "".join(f"<loc{v:04d}>" for v in (y1, x1, min(y2, 1023), min(x2, 1023)))
        segs = "".join(f"<seg{v:03d}>" for v in rng.integers(0, 128, size=16))
        objects.append(f"{locs} {segs} thing {i}")
    return " ; ".join(objects)


def photo_like(size_wh: tuple[int, int], seed: int = 0) -> Image.Image:
    """Smooth gradients plus sensor-like noise: compresses like a photo, not noise."""
    width, height = size_wh
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    base = np.stack(
        [xx / width * 255, yy / height * 255, (xx + yy) / (width + height) * 255], -1
    )
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def run(repeats: int) -> dict:
    from scripts.make_synthetic_vae import write_synthetic_vae
    from scripts.make_tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", seed=0)
        vae = write_synthetic_vae(Path(tmp) / "vae-oid.npz", seed=0)
        settings = Settings(model_id=str(model_dir), vae_path=str(vae), data_dir=tmp)
        manager = ModelManager(settings, feature_cache_size=0)
        started = time.perf_counter()
        manager.load()
        load_s = time.perf_counter() - started

        image = photo_like(IMAGE_WH)
        intent = Intent(task="segment", prompt="segment thing", targets=("thing",))
        generation = Generation(intent, five_objects_answer(), False, 128, 0.0)
        result = build_result(image.size, generation, manager)

        def stage(name: str) -> float:
            timings = build_result(image.size, generation, manager).timings_s
            return timings[name]

        stages_ms = {
            "preprocess": median_ms(
                lambda: manager.processor(
                    images=image, text="<image>segment thing", return_tensors="pt"
                ),
                repeats,
            ),
            "generate_30_tokens": median_ms(
                lambda: manager.generate(image, "segment thing", max_new_tokens=30),
                repeats,
            ),
        }
        for name in ("parse", "decode_masks", "place"):
            samples = [stage(name) for _ in range(repeats)]
            stages_ms[name] = round(statistics.median(samples) * 1000, 2)
        stages_ms["render"] = median_ms(
            lambda: render_overlay(image, result.detections), repeats
        )
        overlay = render_overlay(image, result.detections)
        stages_ms["encode_jpeg"] = median_ms(lambda: to_jpeg_bytes(overlay), repeats)
        outside = sum(stages_ms[k] for k in OUTSIDE_GENERATE)
        item = ExportItem("photo.png", image.size, result.detections, None)
        downloads_ms = {
            "overlay_png": median_ms(lambda: to_png_bytes(overlay), repeats),
            "zip_masks_coco_yolo": median_ms(lambda: masks_zip([item]), repeats),
        }
        throughput = vae_throughput(manager.mask_decoder, (1, 8, 16), repeats=repeats)
    return {
        "bench": "pipeline",
        "machine": {"python": platform.python_version(), "cpu": platform.machine()},
        "model": "tiny random PaliGemma 2 (scripts/make_tiny_model.py), fp32 CPU",
        "image_wh": list(IMAGE_WH),
        "objects": len(result.detections),
        "masks": sum(d.has_mask for d in result.detections),
        "load_s": round(load_s, 2),
        "stages_ms": stages_ms,
        "outside_generate_ms": round(outside, 2),
        "outside_generate_target_ms": TARGET_OUTSIDE_GENERATE_MS,
        "downloads_ms": downloads_ms,
        "vae_masks_per_s": throughput,
        "vae_target_masks_per_s": TARGET_VAE_MASKS_PER_S,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(run(args.repeats), indent=2))


if __name__ == "__main__":
    main()
