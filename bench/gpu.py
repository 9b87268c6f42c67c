"""GPU latency and throughput of the local engine, eager vs compiled, as JSON.

On CUDA (the intended use) it loads PaliGemma 2 at 224 and 448 px once each
and, for the decode step eager (COMPILE=off) and compiled (COMPILE=on, the
warm-up timed apart), measures per-request latency of "segment cat",
"detect cat ; dog" and "caption en" with 1, 8 and 32 concurrent users
(threads calling ``generate`` as the queue workers do; BATCH_MAX 8 groups
them), throughput, tokens per request and peak GPU memory. A time budget
(default 450 s) skips what is left rather than run past 8 minutes.

    python -m bench.gpu                                  # CUDA, 3B-224 and 3B-448
    python -m bench.gpu --models 448=/models/paligemma2-3b-mix-448

Without CUDA it runs the same code on the tiny random model (built on the
fly), eager only by default: a smoke test of the script, in seconds. Its
figures say nothing about a GPU.

Ratios in ``summary`` compare equal work: the same model, prompts, greedy
answers (so the same tokens) and request counts on both sides.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from core.config import Settings
from core.engine.local import ModelManager

logger = logging.getLogger(__name__)

PROMPTS = {  # prompt -> max_new_tokens, as the app sizes them (core.intent)
    "segment cat": 64,
    "detect cat ; dog": 48,
    "caption en": 64,
}
DEFAULT_MODELS = {
    "224": "google/paligemma2-3b-mix-224",
    "448": "google/paligemma2-3b-mix-448",
}


def _image() -> Image.Image:
    """A 640x480 gradient (the content only changes which tokens come out)."""
    return Image.linear_gradient("L").resize((640, 480)).convert("RGB")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_users(engine: Any, users: int, per_user: int) -> dict[str, Any]:
    """``users`` threads, each asking ``per_user`` prompts round-robin."""
    prompts = list(PROMPTS)
    image = _image()
    latencies: dict[str, list[float]] = {prompt: [] for prompt in prompts}
    tokens: dict[str, list[int]] = {prompt: [] for prompt in prompts}
    lock = threading.Lock()
    go = threading.Barrier(users)

    def user(index: int) -> None:
        go.wait()  # all users start together
        for k in range(per_user):
            prompt = prompts[(index + k) % len(prompts)]
            start = time.perf_counter()
            answer = engine.generate(image, prompt, max_new_tokens=PROMPTS[prompt])
            elapsed = time.perf_counter() - start
            with lock:
                latencies[prompt].append(elapsed)
                tokens[prompt].append(answer.num_tokens)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done = sum(len(v) for v in latencies.values())
    return {
        "users": users,
        "requests": done,
        "wall_s": round(wall, 4),
        "requests_per_s": round(done / wall, 3),
        "tokens_per_s": round(sum(sum(v) for v in tokens.values()) / wall, 1),
        "per_prompt": {
            prompt: {
                "latency_median_s": round(statistics.median(values), 4),
                "latency_p95_s": round(_percentile(values, 0.95), 4),
                "new_tokens_median": statistics.median(tokens[prompt]),
            }
            for prompt, values in latencies.items()
            if values
        },
    }


def _peak_memory_gb(torch: Any, cuda: bool) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None


def bench_model(
    label: str,
    model_id: str,
    modes: list[str],
    users: list[int],
    per_user: int,
    deadline: float,
    cuda: bool,
    compile_backend: str,
) -> list[dict[str, Any]]:
    """Every (mode, users) run for one checkpoint; one engine per mode."""
    import torch

    results = []
    for mode in modes:
        if time.perf_counter() > deadline:
            results.append({"model": label, "mode": mode, "skipped": "time budget"})
            continue
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        settings = Settings(
            model_id=model_id,
            device="cuda" if cuda else "cpu",
            batch_max=8 if cuda else 4,
            compile="on" if mode == "compiled" else "off",
            compile_backend=compile_backend,
            vae_path=str(Path(tempfile.gettempdir()) / "no-vae.npz"),  # not used
            load_on_start=False,
        )
        engine = ModelManager(settings)
        started = time.perf_counter()
        engine.load()  # for "compiled": includes every shape's compile
        entry: dict[str, Any] = {
            "model": label,
            "model_id": model_id,
            "mode": mode,
            "load_and_warm_s": round(time.perf_counter() - started, 2),
            "runs": [],
        }
        for count in users:
            if time.perf_counter() > deadline:
                entry["runs"].append({"users": count, "skipped": "time budget"})
                continue
            entry["runs"].append(run_users(engine, count, per_user))
        entry["peak_gpu_memory_gb"] = _peak_memory_gb(torch, cuda)
        engine.close()
        del engine
        if cuda:
            torch.cuda.empty_cache()
        results.append(entry)
    return results


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Side-by-side ratios on equal work (same model, prompts and requests)."""
    summary: dict[str, Any] = {}
    by_key = {
        (entry["model"], entry["mode"], run["users"]): run
        for entry in results
        for run in entry.get("runs", [])
        if "skipped" not in run
    }
    for model, mode, users in list(by_key):
        one = by_key.get((model, mode, 1))
        run = by_key[(model, mode, users)]
        if one and users > 1:
            summary[f"{model}/{mode}: throughput {users} users / 1 user"] = round(
                run["requests_per_s"] / one["requests_per_s"], 2
            )
        eager = by_key.get((model, "eager", users))
        if mode == "compiled" and eager:
            summary[f"{model}/{users} users: eager wall / compiled wall"] = round(
                eager["wall_s"] / run["wall_s"], 2
            )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", help="LABEL=MODEL_ID (CUDA)")
    parser.add_argument("--modes", nargs="*", choices=["eager", "compiled"])
    parser.add_argument("--users", nargs="*", type=int)
    parser.add_argument("--per-user", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=450.0)
    parser.add_argument("--compile-backend", default="inductor")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    cuda = torch.cuda.is_available()
    deadline = time.perf_counter() + args.budget_s
    with tempfile.TemporaryDirectory() as tmp:
        if cuda:
            models = dict(m.split("=", 1) for m in args.models or []) or DEFAULT_MODELS
            modes, users = args.modes or ["eager", "compiled"], args.users or [1, 8, 32]
        else:  # smoke test: the tiny random model, eager, in seconds
            from scripts.make_tiny_model import build_tiny_model

            models = {"tiny": str(build_tiny_model(Path(tmp) / "tiny", seed=0))}
            modes, users = args.modes or ["eager"], args.users or [1, 4]
        results = []
        for label, model_id in models.items():
            results += bench_model(
                label,
                model_id,
                modes,
                users,
                args.per_user,
                deadline,
                cuda,
                args.compile_backend,
            )
    report = {
        "device": torch.cuda.get_device_name() if cuda else "cpu (tiny model)",
        "torch": torch.__version__,
        "results": results,
        "summary": summarize(results),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
