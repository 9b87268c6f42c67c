"""Recall of small objects with and without tiles, and what tiles cost.

Usage: ``python -m bench.tiles [--size 4032x3024] [--objects 24]``; prints JSON.

No weights here, so the model is a stand-in with PaliGemma's one real limit:
it sees the photo (or the tile) at ``--model-px`` (448) and answers
``detect square`` with ``<loc>`` boxes of the red squares it can see there,
i.e. those covering at least ``--min-model-px`` pixels after the downscale (a
far object a few pixels wide is lost, as with the real model). Everything
after ``generate`` is the production path (parse, place, slicing and merging).
Recall = ground-truth squares matched by a detection with IoU >= 0.5.
The time per grid includes the stand-in model (a resize per call); on a real
model each tile adds one model call (``model_calls``): multiply by the model's
time per call (bench/real_size.py) for the real cost.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from PIL import Image
from scipy import ndimage

from core.intent import parse_intent
from core.tiling import analyze_tiled, tile_grid
from core.tokens import LOC_BINS
from core.types import GeneratedText

GRIDS = ("off", "2x2", "auto", "4x4")


class SquareSpotter:
    """Finds red squares at the model's input resolution; replay-free."""

    def __init__(self, model_px: int, min_model_px: int) -> None:
        self.model_px = model_px
        self.min_model_px = min_model_px
        self.calls = 0

    def generate(self, image: Image.Image, prompt: str, **_: object) -> GeneratedText:
        self.calls += 1
        seen = image.resize((self.model_px, self.model_px), Image.BILINEAR)
        pixels = np.asarray(seen).astype(int)
        red = (pixels[..., 0] > 150) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
        labels, _ = ndimage.label(red)
        objects = []
        for index, found in enumerate(ndimage.find_objects(labels), start=1):
            if found is None or (labels[found] == index).sum() < self.min_model_px:
                continue
            rows, cols = found
            box = (rows.start, cols.start, rows.stop, cols.stop)  # y1 x1 y2 x2
            bins = [min(LOC_BINS - 1, round(v / self.model_px * LOC_BINS)) for v in box]
            objects.append("".join(f"<loc{b:04d}>" for b in bins) + " square")
        return GeneratedText(" ; ".join(objects), num_tokens=7 * len(objects))

    def decode_masks(self, seg_indices):  # detect only: never called
        raise AssertionError("no masks in this benchmark")


def scene(size_wh: tuple[int, int], objects: int, side: int, seed: int):
    """A grey photo-like scene with ``objects`` red squares of ``side`` px."""
    rng = np.random.default_rng(seed)
    width, height = size_wh
    pixels = rng.normal(128, 12, (height, width, 3)).clip(0, 255).astype(np.uint8)
    truth = []
    while len(truth) < objects:
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        box = (x, y, x + side, y + side)
        if any(_iou(box, other) > 0 for other in truth):
            continue
        pixels[y : y + side, x : x + side] = (220, 30, 30)
        truth.append(box)
    return Image.fromarray(pixels), truth


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def recall(truth, boxes) -> float:
    matched = sum(any(_iou(t, b) >= 0.5 for b in boxes) for t in truth)
    return matched / len(truth)


def run(args: argparse.Namespace) -> dict:
    width, height = (int(v) for v in args.size.split("x"))
    image, truth = scene((width, height), args.objects, args.side, args.seed)
    intent = parse_intent("detect square")
    analyze_tiled(image, intent, SquareSpotter(448, 9), (2, 1))  # warm: imports
    rows = []
    for spec in GRIDS:
        grid = tile_grid(spec if spec in ("off", "auto") else _grid(spec), image.size)
        model = SquareSpotter(args.model_px, args.min_model_px)
        started = time.perf_counter()
        result = analyze_tiled(image, intent, model, grid)
        seconds = time.perf_counter() - started
        boxes = [d.box_px for d in result.detections]
        rows.append(
            {
                "tiles": spec,
                "grid": f"{grid[0]}x{grid[1]}",
                "model_calls": model.calls,
                "recall": round(recall(truth, boxes), 3),
                "detections": len(boxes),
                "seconds_with_stand_in_model": round(seconds, 3),
            }
        )
    return {
        "benchmark": "tiles",
        "size": args.size,
        "objects": args.objects,
        "object_px": args.side,
        "model_px": args.model_px,
        "min_model_px": args.min_model_px,
        "machine": platform.machine(),
        "results": rows,
    }


def _grid(spec: str) -> tuple[int, int]:
    columns, rows = spec.split("x")
    return int(columns), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4032x3024")
    parser.add_argument("--objects", type=int, default=24)
    parser.add_argument("--side", type=int, default=24, help="square side in px")
    parser.add_argument("--model-px", type=int, default=448)
    parser.add_argument("--min-model-px", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
