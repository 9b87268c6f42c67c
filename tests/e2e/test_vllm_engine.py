"""A real `vllm serve` of the tiny PaliGemma 2 (skipped without CUDA + vllm)."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from PIL import Image

from core.config import Settings
from core.engine.openai_wire import TokenIdMap


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gradient(width: int, height: int) -> Image.Image:
    xx, yy = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([xx * 3 % 256, yy * 5 % 256, (xx + yy) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def _cuda_and_vllm() -> bool:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(
    not _cuda_and_vllm(), reason="needs a CUDA GPU and the vllm package (>= 0.14.0)"
)
def test_vllm_serves_the_tiny_model_and_parity_runs(
    tiny_model_dir, synthetic_vae_path, tmp_path
):
    """A real `vllm serve` of the tiny PaliGemma 2 against the local backend.

    Weights are random, and vLLM makes only image tokens bidirectional
    (transformers: image + prompt), so texts may differ: asserted are a sound
    engine (ids learnt, greedy answers deterministic, stream == plain) and a
    parity report; the agreement figures are printed for the record.
    """
    import subprocess
    import sys
    import time

    import httpx
    from transformers import AutoTokenizer

    from bench.parity import make_backend, run_parity

    port = free_port()
    log = (tmp_path / "vllm.log").open("w")
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(tiny_model_dir), "--port", str(port), "--dtype", "float32",
        "--max-model-len", "256", "--enforce-eager",
        "--gpu-memory-utilization", "0.2", "--limit-mm-per-prompt", '{"image": 1}',
    ]  # fmt: skip
    engine = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert engine.poll() is None, (tmp_path / "vllm.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(2)
        common = dict(
            model_id=str(tiny_model_dir),
            vae_path=str(synthetic_vae_path),
            data_dir=str(tmp_path),
        )
        remote = make_backend(Settings(backend="openai", backend_url=url, **common))
        local = make_backend(Settings(dtype="float32", **common))
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        loc0, seg0 = tokenizer.convert_tokens_to_ids(["<loc0000>", "<seg000>"])
        assert remote.token_ids == TokenIdMap(loc_base=loc0, seg_base=seg0)
        image = gradient(48, 40)
        for prompt in ("caption en", "detect cat", "segment cat"):
            plain = remote.generate(image, prompt, max_new_tokens=24)
            pieces: list[str] = []
            streamed = remote.generate(
                image, prompt, max_new_tokens=24, on_text=pieces.append
            )
            assert plain == remote.generate(image, prompt, max_new_tokens=24)
            assert (streamed, streamed.num_tokens) == (plain, plain.num_tokens)
            assert 1 <= plain.num_tokens <= 24
        report = run_parity(
            local, remote, [("gradient", image)], ["caption en", "segment cat"]
        )
        assert report["summary"]["cases"] == 2
        print(json.dumps(report["summary"]))
        remote.close()
    finally:
        engine.terminate()
        engine.wait(timeout=60)
        log.close()
