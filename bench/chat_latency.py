"""Chat latency over the real server: message sent -> first visible progress
-> final answer, first turn vs repeat turns on the same image.

Usage: ``python -m bench.chat_latency [--turns N] [--model DIR] [--vae NPZ]``;
prints JSON. Without ``--model`` it serves the tiny random PaliGemma 2 and a
synthetic VAE (built offline in a temp dir), so the figures show the app's own
overhead (socket, steps, queue, image I/O, rendering) rather than model time.
The server is the real `chainlit run chainlit_app.py`, driven over its socket as
the web page does (tests/support/chat_client.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.support.chat_client import ChatClient, start_server


def photo_png(size_wh=(1024, 768)) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize(size_wh).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


async def measure_turn(client: ChatClient, text: str, files) -> dict[str, float]:
    """Seconds from sending to the first step, the generating step, the answer."""
    before = len(client.arrivals)
    sent = time.perf_counter()
    await client.send(text, files, timeout_s=600)
    arrived = client.arrivals[before:]
    first = arrived[0][0]
    generating = next(t for t, step in arrived if step.get("name") == "generating")
    answer = max(t for t, step in arrived if step.get("type") == "assistant_message")
    return {
        "first_progress_s": round(first - sent, 4),
        "generating_step_s": round(generating - sent, 4),
        "final_answer_s": round(answer - sent, 4),
    }


async def run_turns(url: str, turns: int) -> list[dict[str, float]]:
    client = ChatClient(url)
    await client.connect()
    try:
        upload = [("cat.png", photo_png())]
        results = [await measure_turn(client, "segment cat", upload)]
        for _ in range(turns - 1):
            results.append(await measure_turn(client, "segment cat", []))
        return results
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--model", help="MODEL_ID (default: the tiny model)")
    parser.add_argument("--vae", help="VAE_PATH (default: a synthetic one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, vae = args.model, args.vae
        if model is None:
            from scripts.make_tiny_model import build_tiny_model

            model = str(build_tiny_model(folder / "tiny", seed=0))
        if vae is None:
            from scripts.make_synthetic_vae import write_synthetic_vae

            vae = str(write_synthetic_vae(folder / "vae-oid.npz", seed=0))
        env = {
            "MODEL_ID": model,
            "VAE_PATH": vae,
            "DATA_DIR": str(folder / "data"),
            "HF_HUB_OFFLINE": "1",
            "RATE_LIMIT": "0",
        }
        server = start_server(env, folder / "server.log")
        try:
            server.wait_ready(timeout_s=1800)
            turns = asyncio.run(run_turns(server.url, args.turns))
        finally:
            server.stop()
    repeats = turns[1:] or turns

    def median(key: str) -> float:
        return round(statistics.median(t[key] for t in repeats), 4)

    print(
        json.dumps(
            {
                "bench": "chat_latency",
                "model": model if args.model else "tiny random PaliGemma 2",
                "image_wh": [1024, 768],
                "request": "segment cat",
                "first_turn": turns[0],
                "repeat_turns_median": {
                    k: median(k)
                    for k in ("first_progress_s", "generating_step_s", "final_answer_s")
                },
                "turns": len(turns),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
