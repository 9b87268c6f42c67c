"""PaliGemma's segmentation VAE decoder: 16 codebook indices -> 64x64 mask logits.

The only module that imports jax/flax. Weights come from big_vision's
``vae-oid.npz`` (PyTorch layout); they are converted to Flax once, the forward
is jitted once, and the common batch sizes are compiled at load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from huggingface_hub import hf_hub_download

from core.config import VAE_FILENAME, VAE_REPO_ID, VAE_SHA256, Settings
from core.errors import ModelUnavailableError
from core.tokens import MASK_SIDE, SEG_CODES, SEG_PER_OBJECT

logger = logging.getLogger(__name__)

# Larger requests are decoded in chunks of MAX_BUCKET masks: on CPU, chunks of 8
# ran as fast per mask as 16 and 2x faster than 64 (activations leave the cache),
# and with every bucket compiled at load nothing compiles while serving.
MAX_BUCKET = 8
WARMUP_BUCKETS = (1, 2, 4, 8)  # padded batch sizes compiled at load
VAE_FIX = (
    "set VAE_PATH to a local copy of vae-oid.npz (8.5 MB, from the Hugging Face "
    f"space {VAE_REPO_ID})"
)

# npz key -> expected shape (PyTorch layout; transposed convs are (in, out, kh, kw)).
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {
    "_vq_vae._embedding": (SEG_CODES, 512),
    "decoder.0.weight": (128, 512, 1, 1),
    "decoder.0.bias": (128,),
    **{
        f"decoder.{block}.net.{i}.{part}": shape
        for block in (2, 3)
        for i, k in ((0, 3), (2, 3), (4, 1))
        for part, shape in (("weight", (128, 128, k, k)), ("bias", (128,)))
    },
    **{
        f"decoder.{index}.{part}": shape
        for index, cin, cout in ((4, 128, 128), (6, 128, 64), (8, 64, 32), (10, 32, 16))
        for part, shape in (("weight", (cin, cout, 4, 4)), ("bias", (cout,)))
    },
    "decoder.12.weight": (1, 16, 1, 1),
    "decoder.12.bias": (1,),
}


class _ResBlock(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.relu(nn.Conv(self.features, (3, 3), padding=1)(x))
        y = nn.relu(nn.Conv(self.features, (3, 3), padding=1)(y))
        return x + nn.Conv(self.features, (1, 1), padding=0)(y)


class _Decoder(nn.Module):
    """[B, 4, 4, 512] quantised codes -> [B, 64, 64, 1] logits (big_vision layout)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dim = 128
        x = nn.relu(nn.Conv(dim, (1, 1), padding=0)(x))
        for i in range(2):
            x = _ResBlock(dim, name=f"ResBlock_{i}")(x)
        for _ in range(4):  # each doubles H and W: 4 -> 8 -> 16 -> 32 -> 64
            # padding 2 with transpose_kernel=True equals torch's padding 1
            x = nn.ConvTranspose(
                dim, (4, 4), strides=(2, 2), padding=2, transpose_kernel=True
            )(x)
            x = nn.relu(x)
            dim //= 2
        return nn.Conv(1, (1, 1), padding=0)(x)


def npz_to_params(checkpoint: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """PyTorch-layout VAE arrays -> Flax params of ``_Decoder`` plus the codebook.

    Kernels of both conv kinds are transposed with axes (2, 3, 1, 0).
    """

    def conv(name: str) -> dict[str, np.ndarray]:
        kernel = np.transpose(checkpoint[f"{name}.weight"], (2, 3, 1, 0))
        return {"kernel": kernel, "bias": checkpoint[f"{name}.bias"]}

    def resblock(name: str) -> dict[str, Any]:
        return {f"Conv_{i}": conv(f"{name}.net.{2 * i}") for i in range(3)}

    decoder = {
        "Conv_0": conv("decoder.0"),
        "ResBlock_0": resblock("decoder.2"),
        "ResBlock_1": resblock("decoder.3"),
        **{f"ConvTranspose_{i}": conv(f"decoder.{4 + 2 * i}") for i in range(4)},
        "Conv_1": conv("decoder.12"),
    }
    return {"codebook": checkpoint["_vq_vae._embedding"], "decoder": decoder}


def _forward(params: dict[str, Any], seg_indices: jax.Array) -> jax.Array:
    """int32 [B, 16] -> float32 [B, 64, 64] logits."""
    batch = seg_indices.shape[0]
    codes = jnp.take(params["codebook"], seg_indices.reshape(-1), axis=0)
    grid = codes.reshape(batch, 4, 4, -1)  # row-major 4x4 grid of codes
    logits = _Decoder().apply({"params": params["decoder"]}, grid)
    return logits[..., 0]


def bucket_size(n: int) -> int:
    """The padded batch size used for ``n`` masks: next power of two, at most 8."""
    if n <= 1:
        return 1
    return min(1 << (n - 1).bit_length(), MAX_BUCKET)


def _validate(seg_indices: Any) -> np.ndarray:
    try:
        array = np.asarray(seg_indices)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(
            f"seg_indices must be a rectangular [N, {SEG_PER_OBJECT}] array: {exc}"
        ) from exc
    if array.size == 0 and array.shape in ((0,), (0, SEG_PER_OBJECT)):
        return np.zeros((0, SEG_PER_OBJECT), dtype=np.int32)
    if array.ndim != 2 or array.shape[1] != SEG_PER_OBJECT:
        raise ValueError(
            f"seg_indices must be shaped [N, {SEG_PER_OBJECT}], got {array.shape}"
        )
    if array.dtype.kind not in "iu":
        raise ValueError(
            f"seg_indices must be integers, got dtype {array.dtype} "
            f"(values like {array.reshape(-1)[:3].tolist()})"
        )
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= SEG_CODES:
        raise ValueError(
            f"seg_indices must be in 0..{SEG_CODES - 1}, got values in {low}..{high}"
        )
    return array.astype(np.int32)


class MaskDecoder:
    """Decodes PaliGemma ``<segDDD>`` codes into mask logits; load once, reuse."""

    def __init__(
        self,
        params: dict[str, Any],
        source: str = "<memory>",
        warmup_buckets: tuple[int, ...] = WARMUP_BUCKETS,
    ) -> None:
        self.source = source
        self.platform = jax.default_backend()  # "cpu", "gpu" or "tpu"
        self._params = jax.device_put(params)
        self._traced_sizes: list[int] = []

        def traced(params: dict[str, Any], seg_indices: jax.Array) -> jax.Array:
            # Python code here runs only while jax traces (compiles) a new shape.
            self._traced_sizes.append(seg_indices.shape[0])
            logger.debug("compiling mask decoder for batch %d", seg_indices.shape[0])
            return _forward(params, seg_indices)

        self._forward = jax.jit(traced)
        started = time.perf_counter()
        for size in warmup_buckets:
            dummy = np.zeros((bucket_size(size), SEG_PER_OBJECT), np.int32)  # as decode
            self._forward(self._params, dummy).block_until_ready()
        logger.info(
            "mask decoder ready (%s on %s); warmed batch sizes %s in %.2f s",
            source,
            self.platform,
            list(warmup_buckets),
            time.perf_counter() - started,
        )

    @property
    def compiled_batch_sizes(self) -> tuple[int, ...]:
        """Padded batch sizes compiled so far, in compile order."""
        return tuple(self._traced_sizes)

    @classmethod
    def from_npz(
        cls, path: str | Path, warmup_buckets: tuple[int, ...] = WARMUP_BUCKETS
    ) -> MaskDecoder:
        """Load a vae-oid.npz file; extra keys (encoder, EMA) are ignored.

        Raises ValueError naming the path when keys are missing or misshapen.
        """
        path = Path(path)
        with np.load(path) as npz:
            missing = sorted(set(EXPECTED_SHAPES) - set(npz.files))
            if missing:
                raise ValueError(
                    f"{path} is not a PaliGemma mask VAE: missing keys {missing}"
                )
            checkpoint = {
                key: npz[key].astype(np.float32, copy=False) for key in EXPECTED_SHAPES
            }
        wrong = {
            key: array.shape
            for key, array in checkpoint.items()
            if array.shape != EXPECTED_SHAPES[key]
        }
        if wrong:
            expected = {key: EXPECTED_SHAPES[key] for key in wrong}
            raise ValueError(f"{path}: wrong shapes {wrong}, expected {expected}")
        return cls(npz_to_params(checkpoint), str(path), warmup_buckets)

    def decode(self, seg_indices: Any) -> np.ndarray:
        """Decode masks for all objects of a request in one call.

        ``seg_indices``: int array-like [N, 16], values 0..127 (the ``<segDDD>``
        numbers in model order). Returns float32 [N, 64, 64] raw logits, about
        [-1, 1]; ``> 0`` is inside the mask. N == 0 returns shape (0, 64, 64).
        Raises ValueError for a wrong shape, a non-integer dtype or an
        out-of-range index.
        """
        codes = _validate(seg_indices)
        n = codes.shape[0]
        if n == 0:
            return np.zeros((0, MASK_SIDE, MASK_SIDE), dtype=np.float32)
        chunks = []
        for start in range(0, n, MAX_BUCKET):
            chunk = codes[start : start + MAX_BUCKET]
            padded = np.zeros((bucket_size(len(chunk)), SEG_PER_OBJECT), np.int32)
            padded[: len(chunk)] = chunk  # padding rows decode code 0; sliced off
            logits = self._forward(self._params, padded)
            chunks.append(np.asarray(logits)[: len(chunk)])
        return np.concatenate(chunks).astype(np.float32, copy=False)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_vae_path(settings: Settings) -> Path:
    """Where vae-oid.npz is: VAE_PATH, else a verified cached copy, else download.

    A download is verified against ``VAE_SHA256`` and copied into
    ``settings.vae_cache_path``. Raises ModelUnavailableError with the fix.
    """
    if settings.vae_path is not None:
        explicit = Path(settings.vae_path).expanduser()
        if not explicit.is_file():
            raise ModelUnavailableError(
                f"The segmentation VAE file at VAE_PATH ({explicit}) was not found. "
                f"Fix the path or unset VAE_PATH to download it; or {VAE_FIX}."
            )
        if file_sha256(explicit) != VAE_SHA256:
            logger.warning("VAE_PATH %s is not the published vae-oid.npz", explicit)
        return explicit

    cached = settings.vae_cache_path
    if cached.is_file():
        if file_sha256(cached) == VAE_SHA256:
            return cached
        logger.warning("cached VAE %s has the wrong sha256; downloading again", cached)

    try:
        # A network library boundary: any failure becomes one actionable error.
        downloaded = Path(
            hf_hub_download(
                repo_id=VAE_REPO_ID,
                filename=VAE_FILENAME,
                repo_type="space",
                token=settings.hf_token,
                etag_timeout=5.0,  # fail sooner when the hub is unreachable
            )
        )
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise ModelUnavailableError(
            f"Could not download {VAE_FILENAME} from the Hugging Face space "
            f"{VAE_REPO_ID} ({type(exc).__name__}: {reason}). To fix: {VAE_FIX}."
        ) from exc

    digest = file_sha256(downloaded)
    if digest != VAE_SHA256:
        raise ModelUnavailableError(
            f"The downloaded {VAE_FILENAME} has sha256 {digest}, expected "
            f"{VAE_SHA256}; refusing to use it. To fix: {VAE_FIX}."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.name}.partial")
    shutil.copyfile(downloaded, partial)
    os.replace(partial, cached)  # atomic: no half-written cache file
    logger.info("segmentation VAE saved to %s", cached)
    return cached
