"""A clip in the real chat and through the real /v1/analyze (replay model):
"track the square" on a synthetic clip (made with PyAV here) answers with the
annotated video, the per-frame table with one track id, and the downloads."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import av
import httpx
import pytest

from core.intent import HELP_MESSAGE
from tests.support.chat_client import ChatClient
from tests.support.clips import loc_answer, make_clip, square_box

RECORDING = {"detect square": loc_answer(square_box(2), "square")}


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=RECORDING, RATE_LIMIT="0", VIDEO_FPS="5")


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("clip")
    return make_clip(folder / "square.mp4").read_bytes()  # 1 s at 10 fps


def _frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_chat_tracks_the_square_in_an_uploaded_clip(server, clip_bytes) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        greeting = await client.send("", [("square.mp4", clip_bytes, "video/mp4")])
        helped = await client.send("help")  # still the chat's command
        replies = await client.send("track the square", timeout_s=300)
        answer = replies[-1]
        files = {e["name"]: e for e in client.elements_for(answer["id"])}
        video = client.download(files["square-tracked.mp4"])
        mot = client.download(files["square.mot.txt"]).decode()
        coco = json.loads(client.download(files["square.coco-video.json"]))
        steps = client.step_outputs("frame 3")
        shown = [step for _, step in client.arrivals] + client.steps  # updates too
        progress = [step.get("output", "") for step in shown]
    finally:
        await client.close()
    assert "5 frame(s)" in greeting[-1]["output"]  # 1 s at VIDEO_FPS 5
    assert helped[-1]["output"] == HELP_MESSAGE
    output = answer["output"]
    assert "`detect square` on 5 of 5 frame(s)" in output and "1 track(s)" in output
    assert "| 3 | 0.4 s | id 1: square 48 96 112 160 |" in output, output
    assert files["square-tracked.mp4"]["type"] == "video"
    assert _frames(video) == 5  # the overlay on every sampled frame
    assert mot.splitlines() == [f"{n},1,48,96,64,64,1,-1,-1,-1" for n in range(1, 6)]
    assert {a["track_id"] for a in coco["annotations"]} == {1}
    assert any("<loc" in s for s in steps)  # the raw answer, in the frame's step
    assert any("Frame 1 of 5" in p for p in progress)
    assert any("Frame 5 of 5" in p for p in progress)


async def test_rest_analyze_answers_frames_with_tracks(server, clip_bytes) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:
        response = await http.post(
            "/v1/analyze",
            data={"prompt": "track the square", "include": "overlay"},
            files={"images": ("square.mp4", clip_bytes, "video/mp4")},
        )
        coco = await http.post(
            "/v1/analyze",
            data={"prompt": "detect square in the video", "format": "coco"},
            files={"images": ("square.mp4", clip_bytes, "video/mp4")},
        )
        broken = await http.post(
            "/v1/analyze",
            data={"prompt": "track the square"},
            files={"images": ("square.mp4", clip_bytes[:300], "video/mp4")},
        )
    assert response.status_code == 200, response.text
    # a model's name, never the recording's local folder (core.security)
    assert "/" not in response.json()["model_id"], response.json()["model_id"]
    (result,) = response.json()["results"]
    assert result["kind"] == "video" and result["tracks"] == [1]
    assert [f["frame"] for f in result["frames"]] == [1, 2, 3, 4, 5]
    assert result["frames"][0]["objects"] == [
        {"track_id": 1, "label": "square", "box": [48, 96, 112, 160], "area": 4096}
    ]
    assert _frames(base64.b64decode(result["annotated_video_mp4"])) == 5
    assert coco.status_code == 200 and len(coco.json()["images"]) == 5
    assert broken.status_code == 400
    assert "not a video" in broken.json()["error"]["message"]


def test_cli_tracks_each_clip_of_a_folder(tmp_path, synthetic_vae_path) -> None:
    from tests.e2e.test_cli import run_cli

    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "square.mp4")
    (clips / "broken.mov").write_bytes(b"\0\0\0\x18ftypqt  " + b"\0" * 100)
    recording = tmp_path / "recording.json"
    recording.write_text(json.dumps(RECORDING))
    out = tmp_path / "out"
    args = ["track the square", str(clips), "--out", str(out)]
    env = {
        "MODEL_ID": f"replay:{recording}",
        "VAE_PATH": str(synthetic_vae_path),
        "VIDEO_FPS": "5",
    }

    proc = run_cli(args, tmp_path, env)

    assert proc.returncode == 0, proc.stderr
    assert "1 of 2 clips done, 1 failed" in proc.stderr
    assert "failed: broken.mov: This file is not a video" in proc.stderr
    assert "frame 5 of 5" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "square.coco-video.json",
        "square.mot.txt",
        "square.tracked.mp4",
        "square.tracks.json",
    ]
    tracks = json.loads((out / "square.tracks.json").read_text())
    assert tracks["tracks"] == [1] and len(tracks["frames"]) == 5
    assert _frames((out / "square.tracked.mp4").read_bytes()) == 5


async def test_stop_ends_a_clip_between_or_inside_frames(
    app_server, clip_bytes, tmp_path
) -> None:
    log = tmp_path / "calls.jsonl"
    slow = {"answers": RECORDING, "token_delay_s": 0.3, "call_log": str(log)}
    server = app_server(recording=slow, name="slow", RATE_LIMIT="0", VIDEO_FPS="5")
    client = ChatClient(server.url)
    await client.connect()

    def shown() -> list[str]:
        steps = [step for _, step in client.arrivals] + client.steps
        return [step.get("output", "") for step in steps]

    try:
        await client.send("", [("square.mp4", clip_bytes, "video/mp4")])
        tasks_before = client.tasks_ended
        running = asyncio.ensure_future(client.send("track the square", timeout_s=60))
        await client.wait_for(lambda: any("Frame 2 of 5" in s for s in shown()), 60)
        await client.sio.emit("stop")
        await client.wait_for(lambda: client.tasks_ended > tasks_before, 30)
        await running
        await asyncio.sleep(1)  # a model still running would log "done" by now
    finally:
        await client.close()
    assert any("Stopped" in s for s in shown())
    assert not any("track(s)" in s for s in shown())  # no reply for the clip
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events.count("done") < 5 and "cancelled" in events, events
