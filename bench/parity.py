"""Do two backends agree? The same prompts and images through both; JSON out.

    python -m bench.parity --images car.jpg street.jpg \\
        --prompts "detect car" "segment person" "caption en" \\
        --a-backend local --b-backend openai --b-url http://localhost:8000

Each side is the app's Settings (from the environment) with ``--{a,b}-*``
overrides, run through the app's own pipeline (intent, token budget, parse,
masks). Objects are matched per case greedily by box IoU (>= --match-iou);
reported: box IoU and mask IoU of matched pairs, label agreement, the share
of objects matched, and exact text agreement. With an OpenAI backend on
either side, ``vllm bench serve``-style figures follow (bench/serving.py):
TTFT, TPOT, latency and throughput at each --concurrency.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.serving import DEFAULT_CONCURRENCY, serving_figures
from core.config import Settings
from core.pipeline import analyze, to_intent, token_budget
from core.types import AnalysisResult, BoxPx, Detection

logger = logging.getLogger(__name__)

MATCH_IOU = 0.5  # pairs below this box IoU count as different objects


def box_iou(a: BoxPx, b: BoxPx) -> float:
    """IoU of two (x1, y1, x2, y2) pixel boxes, in [0, 1]; 0 for empty boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, width) * max(0, height)
    area_a = max(0, a[2] - a[0]) * max(0, a[3] - a[1])
    area_b = max(0, b[2] - b[0]) * max(0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks of one image; 1.0 when both are empty."""
    if a.shape != b.shape:
        raise ValueError(f"masks must share a shape, got {a.shape} and {b.shape}")
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def match_detections(
    a: tuple[Detection, ...], b: tuple[Detection, ...], min_iou: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one pairs (index in a, index in b, box IoU), best first."""
    pairs = sorted(
        (
            (box_iou(da.box_px, db.box_px), i, j)
            for i, da in enumerate(a)
            for j, db in enumerate(b)
        ),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    matched = []
    for iou, i, j in pairs:
        if iou < min_iou or i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        matched.append((i, j, iou))
    return matched


def compare(a: AnalysisResult, b: AnalysisResult, min_iou: float = MATCH_IOU) -> dict:
    """Agreement of two results on the same image and prompt."""
    pairs = match_detections(a.detections, b.detections, min_iou)
    labels = [a.detections[i].label == b.detections[j].label for i, j, _ in pairs]
    masks = [
        mask_iou(a.detections[i].mask, b.detections[j].mask)
        for i, j, _ in pairs
        if a.detections[i].mask is not None and b.detections[j].mask is not None
    ]
    return {
        "objects_a": len(a.detections),
        "objects_b": len(b.detections),
        "matched": len(pairs),
        "box_iou": [round(iou, 6) for _, _, iou in pairs],
        "labels_equal": labels,
        "mask_iou": [round(v, 6) for v in masks],
        "text_equal": a.raw_text == b.raw_text,
        "raw_text_a": a.raw_text,
        "raw_text_b": b.raw_text,
    }


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None


def summarize(cases: list[dict]) -> dict[str, float | None]:
    """Means over all cases; None where nothing was there to compare."""
    objects = sum(max(c["objects_a"], c["objects_b"]) for c in cases)
    labels = [v for c in cases for v in c["labels_equal"]]
    return {
        "cases": len(cases),
        "box_iou_mean": _mean([v for c in cases for v in c["box_iou"]]),
        "mask_iou_mean": _mean([v for c in cases for v in c["mask_iou"]]),
        "label_agreement": _mean([float(v) for v in labels]),
        "object_agreement": sum(c["matched"] for c in cases) / objects
        if objects
        else None,
        "text_agreement": _mean([float(c["text_equal"]) for c in cases]),
    }


def run_parity(
    model_a: Any,
    model_b: Any,
    images: list[tuple[str, Image.Image]],
    prompts: list[str],
    min_iou: float = MATCH_IOU,
) -> dict[str, Any]:
    """Every prompt on every (name, RGB image) through both models; JSON-ready."""
    cases = []
    for name, image in images:
        for prompt in prompts:
            result_a = analyze(image, prompt, model_a)
            result_b = analyze(image, prompt, model_b)
            cases.append(
                {
                    "image": name,
                    "prompt": prompt,
                    **compare(result_a, result_b, min_iou),
                }
            )
    return {"summary": summarize(cases), "cases": cases}


def make_backend(settings: Settings) -> Any:
    """A fresh backend for ``settings`` (not the process-wide one), loaded."""
    if (settings.model_id or "").startswith("replay:"):
        from core.engine.replay import ReplayModel

        backend: Any = ReplayModel(settings)
    elif settings.backend == "openai":
        from core.engine.openai import OpenAIBackend

        backend = OpenAIBackend(settings)
    else:
        from core.engine.local import ModelManager

        backend = ModelManager(settings)
    backend.load()
    return backend


def side_settings(
    base: Settings, backend: str, url: str | None, model: str | None
) -> Settings:
    """``base`` with one side's backend, URL and model (None keeps the base's)."""
    values: dict[str, Any] = {"backend": backend}
    if url is not None:
        values["backend_url"] = url
    if model is not None:
        values["model_id"] = model
    return replace(base, **values)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument("--prompts", nargs="+", required=True, help="chat requests")
    for side, default in (("a", "local"), ("b", "openai")):
        parser.add_argument(
            f"--{side}-backend", choices=("local", "openai"), default=default
        )
        parser.add_argument(f"--{side}-url", help="engine base URL (openai)")
        parser.add_argument(f"--{side}-model", help="MODEL_ID for this side")
    parser.add_argument("--match-iou", type=float, default=MATCH_IOU)
    parser.add_argument(
        "--concurrency", nargs="*", type=int, default=list(DEFAULT_CONCURRENCY)
    )
    parser.add_argument(
        "--requests", type=int, help="per level (default 4 x level, >= 8)"
    )
    args = parser.parse_args(argv)

    base = Settings.from_env()
    settings_a = side_settings(base, args.a_backend, args.a_url, args.a_model)
    settings_b = side_settings(base, args.b_backend, args.b_url, args.b_model)
    images = [(p.name, Image.open(p).convert("RGB")) for p in args.images]
    model_a, model_b = make_backend(settings_a), make_backend(settings_b)
    try:
        report: dict[str, Any] = {
            "bench": "parity",
            "a": {"backend": args.a_backend, "model_id": model_a.status.model_id},
            "b": {"backend": args.b_backend, "model_id": model_b.status.model_id},
            "match_iou": args.match_iou,
            **run_parity(model_a, model_b, images, args.prompts, args.match_iou),
        }
        remote = next(
            (m for m in (model_b, model_a) if m.settings.backend == "openai"), None
        )
        if remote is not None and args.concurrency:
            work = []
            for _, image in images:
                for prompt in args.prompts:
                    work.append(
                        (
                            image,
                            to_intent(prompt).prompt,
                            token_budget(to_intent(prompt)),
                        )
                    )
            report["serving"] = serving_figures(
                remote, work, tuple(args.concurrency), args.requests
            )
    finally:
        for model in (model_a, model_b):
            close = getattr(model, "close", None)
            if close is not None:
                close()
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
