"""MaskDecoder against an independent PyTorch twin, plus VAE file resolution."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from pathlib import Path

import httpx
import huggingface_hub.constants
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import mask_decoder
from core.config import VAE_SHA256, Settings
from core.errors import ModelUnavailableError
from core.mask_decoder import MaskDecoder, bucket_size, file_sha256, resolve_vae_path


@pytest.fixture(scope="module")
def decoder(synthetic_vae_path: Path) -> MaskDecoder:
    return MaskDecoder.from_npz(synthetic_vae_path)


@pytest.fixture(scope="module")
def torch_weights(synthetic_vae_path: Path) -> dict[str, torch.Tensor]:
    with np.load(synthetic_vae_path) as npz:
        return {key: torch.from_numpy(npz[key]) for key in npz.files}


def torch_decode(w: dict[str, torch.Tensor], seg_indices: np.ndarray) -> np.ndarray:
    """The decoder written from the torch layout as stored: [N, 16] -> [N, 64, 64]."""

    def conv(x: torch.Tensor, name: str, padding: int) -> torch.Tensor:
        return F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], padding=padding)

    def up(x: torch.Tensor, name: str) -> torch.Tensor:
        weight, bias = w[f"{name}.weight"], w[f"{name}.bias"]
        return F.relu(F.conv_transpose2d(x, weight, bias, stride=2, padding=1))

    codes = w["_vq_vae._embedding"][torch.from_numpy(seg_indices).long()]
    x = codes.reshape(-1, 4, 4, 512).permute(0, 3, 1, 2)  # NCHW, row-major grid
    x = F.relu(conv(x, "decoder.0", 0))
    for block in ("decoder.2", "decoder.3"):
        y = F.relu(conv(x, f"{block}.net.0", 1))
        y = F.relu(conv(y, f"{block}.net.2", 1))
        x = x + conv(y, f"{block}.net.4", 0)
    for name in ("decoder.4", "decoder.6", "decoder.8", "decoder.10"):
        x = up(x, name)
    return conv(x, "decoder.12", 0)[:, 0].numpy()


def random_codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 128, size=(n, 16))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_torch_twin(decoder, torch_weights, seed):
    codes = random_codes(6, seed)
    expected = torch_decode(torch_weights, codes)
    got = decoder.decode(codes)
    assert np.abs(got - expected).max() < 1e-5


def test_shape_dtype_and_varied_output(decoder):
    masks = decoder.decode(random_codes(5, 4))
    assert masks.shape == (5, 64, 64)
    assert masks.dtype == np.float32
    assert isinstance(masks, np.ndarray)
    inside = (masks > 0).mean()
    assert 0.02 < inside < 0.98  # both sides of the threshold occur
    assert masks.std() > 0.1
    assert not np.allclose(masks[0], masks[1])  # different codes, different masks


def test_batch_equals_one_by_one(decoder):
    codes = random_codes(7, 5)
    batch = decoder.decode(codes)
    single = np.stack([decoder.decode(row[None]) for row in codes])[:, 0]
    np.testing.assert_allclose(batch, single, atol=1e-5)


@pytest.mark.parametrize(
    "n",
    [
        1,  # bucket of one
        3,  # padded to 4
        8,  # one full bucket
        19,  # chunks of 8, 8 and 3 (padded to 4)
    ],
)
def test_padding_buckets_do_not_change_results(decoder, torch_weights, n):
    codes = random_codes(n, 6)
    got = decoder.decode(codes)
    assert got.shape == (n, 64, 64)
    np.testing.assert_allclose(got, torch_decode(torch_weights, codes), atol=1e-5)


def test_no_compile_after_load(decoder):
    assert decoder.compiled_batch_sizes == (1, 2, 4, 8)  # warmed at load
    for n in (1, 3, 5, 7, 11, 29):
        decoder.decode(random_codes(n, n))
    assert decoder.compiled_batch_sizes == (1, 2, 4, 8)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 1), (1, 1), (2, 2), (3, 4), (5, 8), (8, 8), (9, 8), (500, 8)],
)
def test_bucket_size(n, expected):
    assert bucket_size(n) == expected


def test_accepts_lists_and_tuples(decoder):
    codes = random_codes(2, 7)
    as_tuples = [tuple(int(v) for v in row) for row in codes]
    np.testing.assert_array_equal(decoder.decode(as_tuples), decoder.decode(codes))


@pytest.mark.parametrize("empty", [np.zeros((0, 16), np.int64), [], np.array([])])
def test_empty_returns_empty_without_running(decoder, empty, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the forward must not run for N == 0")

    monkeypatch.setattr(decoder, "_forward", fail)
    masks = decoder.decode(empty)
    assert masks.shape == (0, 64, 64)
    assert masks.dtype == np.float32


@pytest.mark.parametrize(
    ("seg_indices", "expectation"),
    [
        (np.zeros((2, 16), np.int32), does_not_raise()),  # valid int32
        (np.full((1, 16), 127, np.uint8), does_not_raise()),  # valid top index
        (np.zeros(16, np.int64), pytest.raises(ValueError, match=r"\[N, 16\]")),  # 1-D
        (np.zeros((2, 15), np.int64), pytest.raises(ValueError, match=r"\(2, 15\)")),
        (np.zeros((1, 4, 4), np.int64), pytest.raises(ValueError, match=r"\[N, 16\]")),
        (np.full((1, 16), 128), pytest.raises(ValueError, match=r"0\.\.127")),  # high
        (np.full((1, 16), -1), pytest.raises(ValueError, match=r"-1\.\.-1")),  # low
        (np.zeros((1, 16), np.float32), pytest.raises(ValueError, match="integers")),
        ([["a"] * 16], pytest.raises(ValueError, match="integers")),  # strings
        (np.zeros((1, 16), bool), pytest.raises(ValueError, match="integers")),  # bool
        (
            [[1] * 16, [2] * 15],
            pytest.raises(ValueError, match="rectangular"),
        ),  # ragged
        ([[]], pytest.raises(ValueError, match=r"\(1, 0\)")),  # one empty row
        (None, pytest.raises(ValueError, match=r"\[N, 16\]")),  # nothing at all
    ],
)
def test_bad_input(decoder, seg_indices, expectation):
    with expectation:
        decoder.decode(seg_indices)


def test_missing_keys_named_with_path(tmp_path, synthetic_vae_path):
    with np.load(synthetic_vae_path) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("decoder.8.")}
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match=r"decoder\.8\.bias") as info:
        MaskDecoder.from_npz(broken, warmup_buckets=())
    assert "decoder.8.weight" in str(info.value)
    assert str(broken) in str(info.value)


def test_wrong_shape_rejected(tmp_path, synthetic_vae_path):
    with np.load(synthetic_vae_path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["decoder.6.weight"] = arrays["decoder.6.weight"].transpose(1, 0, 2, 3)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"decoder\.6\.weight.*\(64, 128, 4, 4\)"):
        MaskDecoder.from_npz(bad, warmup_buckets=())


def test_extra_keys_are_ignored(decoder, tmp_path, synthetic_vae_path):
    with np.load(synthetic_vae_path) as npz:
        assert {"_vq_vae._ema_w", "encoder.0.weight"} <= set(npz.files)
        arrays = {
            k: npz[k] for k in npz.files if k.startswith(("decoder.", "_vq_vae._e"))
        }
    arrays.pop("_vq_vae._ema_w")
    lean = tmp_path / "lean.npz"
    np.savez(lean, **arrays)
    codes = random_codes(3, 8)
    lean_masks = MaskDecoder.from_npz(lean, warmup_buckets=()).decode(codes)
    np.testing.assert_array_equal(lean_masks, decoder.decode(codes))


# --- resolve_vae_path --------------------------------------------------------


def test_explicit_vae_path_missing(tmp_path):
    settings = Settings(data_dir=str(tmp_path), vae_path=str(tmp_path / "nope.npz"))
    with pytest.raises(ModelUnavailableError, match="VAE_PATH") as info:
        resolve_vae_path(settings)
    assert "nope.npz" in info.value.message


def test_explicit_vae_path_used_as_is(tmp_path, synthetic_vae_path):
    settings = Settings(data_dir=str(tmp_path), vae_path=str(synthetic_vae_path))
    assert resolve_vae_path(settings) == synthetic_vae_path


def test_sha256_of_known_bytes(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert file_sha256(path) == expected
    assert file_sha256(path) != VAE_SHA256


def test_wrong_sha_cache_not_used_and_offline_fails_fast(tmp_path, monkeypatch):
    settings = Settings(data_dir=str(tmp_path / "data"))
    settings.vae_cache_path.parent.mkdir(parents=True)
    settings.vae_cache_path.write_bytes(b"not the vae")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    sent: list[str] = []  # fails fast = never waits on the network

    def no_network(self, request, *args, **kwargs):
        sent.append(str(request.url))
        raise httpx.ConnectError("tests send nothing", request=request)

    monkeypatch.setattr(httpx.Client, "send", no_network)
    with pytest.raises(ModelUnavailableError) as info:
        resolve_vae_path(settings)
    assert sent == []
    assert "set VAE_PATH to a local copy of vae-oid.npz" in info.value.message
    assert "big-vision/paligemma-hf" in info.value.message


def test_download_with_wrong_sha_rejected(tmp_path, monkeypatch):
    fake = tmp_path / "downloaded.npz"
    fake.write_bytes(b"tampered")
    monkeypatch.setattr(mask_decoder, "hf_hub_download", lambda **kw: str(fake))
    settings = Settings(data_dir=str(tmp_path / "data"))
    with pytest.raises(ModelUnavailableError, match="sha256"):
        resolve_vae_path(settings)
    assert not settings.vae_cache_path.exists()


def test_verified_download_is_cached(tmp_path, monkeypatch, synthetic_vae_path):
    calls: list[dict] = []

    def download(**kwargs):
        calls.append(kwargs)
        return str(synthetic_vae_path)

    monkeypatch.setattr(mask_decoder, "hf_hub_download", download)
    # The real file cannot exist here: accept the synthetic one's digest instead.
    monkeypatch.setattr(mask_decoder, "VAE_SHA256", file_sha256(synthetic_vae_path))
    settings = Settings(data_dir=str(tmp_path / "data"), hf_token="hf_x")
    path = resolve_vae_path(settings)
    assert path == settings.vae_cache_path
    assert path.read_bytes() == synthetic_vae_path.read_bytes()
    assert calls[0]["repo_type"] == "space"
    assert calls[0]["repo_id"] == "big-vision/paligemma-hf"
    assert calls[0]["token"] == "hf_x"
    assert resolve_vae_path(settings) == path  # second call: the cache, no download
    assert len(calls) == 1
