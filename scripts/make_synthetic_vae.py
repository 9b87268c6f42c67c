"""Write a seeded random stand-in for vae-oid.npz (the PaliGemma mask VAE).

The real file cannot be downloaded in tests, so this writes one with the real
key names, shapes and PyTorch layouts (conv ``.weight`` is (out, in, kh, kw),
transposed-conv ``.weight`` is (in, out, kh, kw)), plus a few encoder and EMA
keys that a decoder loader must ignore. Weights are He-scaled so activations
stay O(1) and the decoded logits vary in sign across the 64x64 mask.

Usage: ``python -m scripts.make_synthetic_vae OUT.npz [--seed N]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

NUM_CODES = 128  # codebook entries: <seg000>..<seg127>
CODE_DIM = 512  # embedding width of one code

# name -> (weight shape in torch layout, kind); kind "conv" or "convT".
DECODER_LAYERS: dict[str, tuple[tuple[int, int, int, int], str]] = {
    "decoder.0": ((128, CODE_DIM, 1, 1), "conv"),
    **{
        f"decoder.{block}.net.{i}": ((128, 128, k, k), "conv")
        for block in (2, 3)
        for i, k in ((0, 3), (2, 3), (4, 1))
    },
    "decoder.4": ((128, 128, 4, 4), "convT"),
    "decoder.6": ((128, 64, 4, 4), "convT"),
    "decoder.8": ((64, 32, 4, 4), "convT"),
    "decoder.10": ((32, 16, 4, 4), "convT"),
    "decoder.12": ((1, 16, 1, 1), "conv"),
}

# Keys present in the real file that the decoder does not use.
EXTRA_KEYS: dict[str, tuple[int, ...]] = {
    "encoder.0.weight": (128, 1, 4, 4),
    "encoder.0.bias": (128,),
    "encoder.2.weight": (128, 128, 4, 4),
    "encoder.2.bias": (128,),
    "_vq_vae._ema_w": (NUM_CODES, CODE_DIM),
    "_vq_vae._ema_cluster_size": (NUM_CODES,),
}


def _fan_in(shape: tuple[int, int, int, int], kind: str) -> int:
    if kind == "conv":
        _, cin, kh, kw = shape
        return cin * kh * kw
    cin, _, kh, kw = shape
    return cin * kh * kw // 4  # stride 2: each output pixel sees a quarter of taps


def synthetic_vae_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """All arrays of a synthetic vae-oid.npz, float32, keyed like the real file."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {
        "_vq_vae._embedding": rng.standard_normal((NUM_CODES, CODE_DIM)),
    }
    for name, (shape, kind) in DECODER_LAYERS.items():
        out_channels = shape[0] if kind == "conv" else shape[1]
        gain = 2.0 if name != "decoder.12" else 1.0  # relu follows all but the last
        std = np.sqrt(gain / _fan_in(shape, kind))
        if ".net.4" in name:
            std *= 0.5  # residual branch: keep the skip sum from growing
        arrays[f"{name}.weight"] = rng.standard_normal(shape) * std
        arrays[f"{name}.bias"] = rng.standard_normal(out_channels) * 0.05
    for name, shape in EXTRA_KEYS.items():
        arrays[name] = rng.standard_normal(shape)
    return {key: value.astype(np.float32) for key, value in arrays.items()}


def write_synthetic_vae(path: str | Path, seed: int = 0) -> Path:
    """Write a seeded synthetic vae-oid.npz to ``path`` and return the path.

    Same seed, same bytes of every array. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # a file handle keeps np.savez from adding .npz
        np.savez(handle, **synthetic_vae_arrays(seed))
    logger.info("wrote synthetic VAE (seed %d) to %s", seed, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the .npz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_synthetic_vae(args.out, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
