"""First turn vs repeat turn on the same image: the vision-feature cache at work.

Usage: ``python -m bench.turns [--images N] [--vision-sizes 224 448]``; prints
JSON. Each model is served by ModelManager (feature cache on) and asked
"detect car" with ``--new-tokens`` tokens, twice per image: the first turn runs
the vision tower, the repeat turn takes its cached features. Models: the tiny
test PaliGemma 2, and the real SigLIP So400m/14 tower (224 px: 256 image
tokens, 448 px: 1024) with a 2-layer decoder, so that the turn costs about
what the tower does. bench.real_size measures the same on the full 3B.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path

from bench.pipeline import photo_like
from bench.real_model import build_checkpoint, rounded, rss_gib
from bench.real_size import loaded, serve_turn

logger = logging.getLogger(__name__)

PROMPT = "detect car"
KEPT = ("total_s", "vision_s", "prefill_s", "per_token_s", "ttft_s", "generate_s")


def turns(checkpoint: Path, vae: Path, images: int, tokens: int) -> dict:
    """Median first and repeat turn over ``images`` distinct images."""
    pictures = [photo_like((1024, 768), seed=seed) for seed in range(images)]
    first, repeat = [], []
    with loaded(checkpoint, vae) as (manager, load_s):
        for picture in pictures:
            first.append(serve_turn(manager, picture, PROMPT, tokens))
            repeat.append(serve_turn(manager, picture, PROMPT, tokens))
        memory = rss_gib()

    def median(runs: list[dict]) -> dict[str, float]:
        return {key: statistics.median(run[key] for run in runs) for key in KEPT}

    first_s, repeat_s = median(first), median(repeat)
    return {
        "load_s": load_s,
        "first_turn": first_s,
        "repeat_turn": repeat_s,
        "first_over_repeat": first_s["total_s"] / repeat_s["total_s"],
        "vision_share_of_first": first_s["vision_s"] / first_s["total_s"],
        "repeat_vision_runs": sum(run["vision_s"] > 0 for run in repeat),
        "memory": memory,
    }


def run(images: int, tokens: int, vision_sizes: list[int]) -> dict:
    from scripts.make_synthetic_vae import write_synthetic_vae
    from scripts.make_tiny_model import build_tiny_model

    report: dict = {
        "bench": "turns",
        "prompt": PROMPT,
        "new_tokens": tokens,
        "images": images,
        "note": "medians over the images; repeat = same image, cached features",
    }
    with tempfile.TemporaryDirectory() as tmp:
        vae = write_synthetic_vae(Path(tmp) / "vae-oid.npz", seed=0)
        tiny = build_tiny_model(Path(tmp) / "tiny", seed=0)
        report["tiny"] = turns(tiny, vae, images, tokens)
        for size in vision_sizes:
            checkpoint = Path(tmp) / f"vision-{size}"
            build_checkpoint(checkpoint, size, tiny_text=True)
            report[f"so400m_{size}_tiny_decoder"] = turns(
                checkpoint, vae, images, tokens
            )
    return rounded(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--vision-sizes", type=int, nargs="*", default=[224, 448])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = run(args.images, args.new_tokens, args.vision_sizes)
    print(json.dumps(report, indent=2))  # the benchmark's output is its JSON
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
