"""Chat latency over the real server: message sent -> first visible progress
-> final answer -> end of the turn, first turn vs repeat turns, per photo size;
then one click on each download button of the last answer (the file is built
then: chat.downloads).

Usage: ``python -m bench.chat_latency [--size 4032x3024] [--turns N]
[--model replay|tiny|DIR] [--vae NPZ]``; prints JSON. Every run measures
1024x768 and each ``--size`` side by side on one server, one chat session
per size with their turns interleaved, and reports their ratios. The photo is a
synthetic JPEG (a phone
photo's format). The default model replays a recorded PaliGemma answer, so
model time is ~0 and the figures are the app's own overhead (socket, steps,
queue, image I/O, masks, rendering, files); ``--model tiny`` serves the tiny
random PaliGemma 2 instead. The server is the real `chainlit run
chainlit_app.py`, driven over its socket as the web page does
(tests/support/chat_client.py).
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

import numpy as np
from PIL import Image

from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ChatClient, start_server

REFERENCE_WH = (1024, 768)
KEYS = ("first_progress_s", "generating_step_s", "final_answer_s", "all_done_s")
FINAL, END = "final_answer_s", "all_done_s"  # the answer shown; the turn ended


def photo_jpeg(size_wh: tuple[int, int]) -> bytes:
    """A photo-like JPEG: smooth colour fields plus fine texture, quality 90."""
    width, height = size_wh
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = np.random.default_rng(0).normal(0, 12, (height, width))
    red = 128 + 90 * np.sin(xx / width * 6.0) + texture
    green = 128 + 90 * np.cos(yy / height * 5.0) + texture
    blue = 128 + 60 * np.sin((xx + yy) / (width + height) * 9.0)
    pixels = np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def measure_turn(client: ChatClient, text: str, files) -> dict[str, float]:
    """Seconds from sending to the first step, the generating step, the answer,
    and the end of the turn."""
    before = len(client.arrivals)
    sent = time.perf_counter()
    await client.send(text, files, timeout_s=600)
    done = time.perf_counter()
    arrived = client.arrivals[before:]
    first = arrived[0][0]
    generating = next(t for t, step in arrived if step.get("name") == "generating")
    answer = max(t for t, step in arrived if step.get("type") == "assistant_message")
    return {
        "first_progress_s": round(first - sent, 4),
        "generating_step_s": round(generating - sent, 4),
        "final_answer_s": round(answer - sent, 4),
        "all_done_s": round(done - sent, 4),
    }


async def measure_clicks(client: ChatClient) -> dict[str, float]:
    """Seconds from a click on each download button of the last answer to its
    file arriving ({} on a server without buttons: downloads came with it)."""
    answer = client.assistant_messages()[-1]
    clicks = {}
    for action in list(client.actions_for(answer["id"])):
        clicked = time.perf_counter()
        await client.download_file(answer["id"], action["label"], timeout_s=600)
        clicks[action["payload"]["format"]] = round(time.perf_counter() - clicked, 4)
    return clicks


async def run_sizes(
    url: str, sizes: list[tuple[int, int]], turns: int
) -> dict[str, list[dict]]:
    """One chat session per size; turns interleaved across sizes (A1 B1 A2 B2
    ...) so that load from elsewhere on the machine hits every size alike."""
    clients = {size: ChatClient(url) for size in sizes}
    for client in clients.values():
        await client.connect()
    try:
        results: dict[str, list[dict]] = {f"{w}x{h}": [] for w, h in sizes}
        for turn in range(turns):
            for (width, height), client in clients.items():
                upload = (
                    [("photo.jpg", photo_jpeg((width, height)))] if turn == 0 else []
                )
                timing = await measure_turn(client, "segment cat", upload)
                results[f"{width}x{height}"].append(timing)
        for (width, height), client in clients.items():
            results[f"{width}x{height}"].append(await measure_clicks(client))
        return results
    finally:
        for client in clients.values():
            await client.close()


def summary(timings: list[dict]) -> dict:
    """First turn, median of the repeat turns, and the download clicks (the
    last entry of ``timings``)."""
    *turns, clicks = timings
    repeats = turns[1:] or turns
    return {
        "first_turn": turns[0],
        "repeat_turns_median": {
            key: round(statistics.median(t[key] for t in repeats), 4) for key in KEYS
        },
        "download_click_s": clicks,
    }


def ratio(run: dict, reference: dict, turn: str, key: str) -> float:
    return round(run[turn][key] / reference[turn][key], 2)


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def model_and_vae(args, folder: Path) -> tuple[str, str]:
    model = args.model
    if model == "replay":
        recording = folder / "recording.json"
        recording.write_text(json.dumps(REPLAY_RECORDING))
        model = f"replay:{recording}"
    elif model == "tiny":
        from scripts.make_tiny_model import build_tiny_model

        model = str(build_tiny_model(folder / "tiny", seed=0))
    vae = args.vae
    if vae is None:
        from scripts.make_synthetic_vae import write_synthetic_vae

        vae = str(write_synthetic_vae(folder / "vae-oid.npz", seed=0))
    return model, vae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--size", action="append", type=parse_size, default=[])
    parser.add_argument("--model", default="replay", help="replay, tiny or MODEL_ID")
    parser.add_argument("--vae", help="VAE_PATH (default: a synthetic one)")
    args = parser.parse_args()
    sizes = [REFERENCE_WH, *[s for s in args.size if s != REFERENCE_WH]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, vae = model_and_vae(args, folder)
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
            # A throwaway session first: the server's first-use costs (imports,
            # first socket, first VAE call) belong to no photo size.
            asyncio.run(run_sizes(server.url, [(64, 48)], 2))
            turns = asyncio.run(run_sizes(server.url, sizes, args.turns))
            runs = {name: summary(timings) for name, timings in turns.items()}
        finally:
            server.stop()
    reference = runs[f"{REFERENCE_WH[0]}x{REFERENCE_WH[1]}"]
    ratios = {
        name: {
            "first_turn_final_answer": ratio(run, reference, "first_turn", FINAL),
            "repeat_turn_final_answer": ratio(
                run, reference, "repeat_turns_median", FINAL
            ),
            "first_turn_end": ratio(run, reference, "first_turn", END),
            "repeat_turn_end": ratio(run, reference, "repeat_turns_median", END),
        }
        for name, run in runs.items()
        if run is not reference
    }
    print(
        json.dumps(
            {
                "bench": "chat_latency",
                "model": args.model,
                "request": "segment cat",
                "turns_per_size": args.turns,
                "sizes": runs,
                "ratios_vs_1024x768": ratios,
                "targets": {
                    "repeat_turn_final_answer": 3.0,
                    "first_turn_final_answer": 4.0,
                    "repeat_turn_end": 3.0,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
