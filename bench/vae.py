"""Throughput of the segmentation VAE decoder, in masks per second.

Usage: ``python -m bench.vae [--repeats N] [--vae PATH]``; prints JSON. Without
``--vae`` it decodes with a seeded synthetic vae-oid.npz written to a temp dir
(same shapes as the real file, so the same cost).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.mask_decoder import MaskDecoder

logger = logging.getLogger(__name__)


def vae_throughput(
    decoder: MaskDecoder,
    batch_sizes: tuple[int, ...] = (1, 8, 16),
    repeats: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Masks per second of ``decoder.decode`` for each batch size.

    Each size is decoded once untimed (compiles its bucket if needed), then
    ``repeats`` times timed. Keys are the batch sizes as strings.
    """
    rng = np.random.default_rng(seed)
    result: dict[str, float] = {}
    for size in batch_sizes:
        codes = rng.integers(0, 128, size=(size, 16))
        decoder.decode(codes)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            decoder.decode(codes)
        elapsed = time.perf_counter() - started
        result[str(size)] = round(size * repeats / elapsed, 1)
    return result


def run(vae_path: Path | None, batch_sizes: tuple[int, ...], repeats: int) -> dict:
    """Load (timed), then measure; returns the JSON-ready report."""
    with tempfile.TemporaryDirectory() as tmp:
        if vae_path is None:
            from scripts.make_synthetic_vae import write_synthetic_vae

            vae_path = write_synthetic_vae(Path(tmp) / "vae-oid.npz", seed=0)
            weights = "synthetic (seed 0)"
        else:
            weights = str(vae_path)
        started = time.perf_counter()
        decoder = MaskDecoder.from_npz(vae_path)
        load_s = time.perf_counter() - started
        masks_per_s = vae_throughput(decoder, batch_sizes, repeats)
    report: dict[str, Any] = {
        "benchmark": "vae_decode",
        "weights": weights,
        "load_and_warmup_s": round(load_s, 2),
        "repeats": repeats,
        "masks_per_s": masks_per_s,
        "jax_backend": decoder.platform,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", type=Path, default=None, help="a real vae-oid.npz")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    args = parser.parse_args(argv)
    report = run(args.vae, tuple(args.batch_sizes), args.repeats)
    print(json.dumps(report, indent=2))  # the benchmark's output is its JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
