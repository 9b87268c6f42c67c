"""core.video and core.service.video on a synthetic clip (a red square moving
right, made with PyAV here) and a model replaying the square's box per frame:
exact boxes, one stable track id, the annotated clip, the exports, the
limits, Stop, and frames decoded one at a time."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import av
import pytest

import core.video.clip as clip_module
from core.config import MB, Settings
from core.engine.queue import ModelQueue
from core.errors import UserInputError
from core.service import Hooks, Services
from core.service.video import probe, run_clip
from core.types import Detection
from core.video import Tracker, coco_video, mot_text, sample_frames, video_request
from tests.support.clips import SquareModel, make_clip, make_sound_only, square_box

FAST = {"rate_limit_per_min": 1000, "load_on_start": False, "video_fps": 10}


def _services(model, **settings) -> Services:
    return Services.build(
        Settings(**{**FAST, **settings}), model, ModelQueue(max_pending=4, timeout_s=30)
    )


def _track(services: Services, clip: Path, text: str = "track the square", **kw):
    info = probe(clip, services.settings)
    job = services.prepare(
        video_request(text), services.options(), "t", images=info.frames
    )
    try:
        return asyncio.run(run_clip(services, job, clip, info, **kw))
    finally:
        services.queue.shutdown()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "square.mp4")


def test_square_is_one_track_with_exact_boxes(clip: Path, tmp_path: Path) -> None:
    model = SquareModel()
    seen: list[tuple[int, int]] = []

    async def progress(n: int, total: int) -> None:
        seen.append((n, total))

    out = tmp_path / "annotated.mp4"
    result = _track(_services(model), clip, video_out=out, on_frame=progress)
    assert [call["prompt"] for call in model.calls] == ["detect square"] * 10
    assert seen == [(n, 10) for n in range(1, 11)]
    assert [f.objects[0].box_px for f in result.frames] == [
        square_box(n) for n in range(10)
    ]
    assert result.track_ids == [1]
    assert [round(f.time_s, 3) for f in result.frames] == [n / 10 for n in range(10)]
    with av.open(str(out)) as container:  # the overlay on every sampled frame
        assert sum(1 for _ in container.decode(video=0)) == 10
    assert result.video_path == str(out) and not result.stopped


def test_exports_carry_the_track_ids(clip: Path) -> None:
    result = _track(_services(SquareModel()), clip)
    lines = mot_text(result).splitlines()
    assert lines[0] == "1,1,16,96,64,64,1,-1,-1,-1"
    assert lines[9] == "10,1,160,96,64,64,1,-1,-1,-1"
    coco = json.loads(json.dumps(coco_video(result, "square.mp4")))
    assert len(coco["images"]) == 10 and coco["tracks"] == [
        {"id": 1, "category_id": 1, "video_id": 1}
    ]
    assert {a["track_id"] for a in coco["annotations"]} == {1}
    assert coco["annotations"][1]["bbox"] == [32, 96, 64, 64]
    assert coco["categories"] == [{"id": 1, "name": "square"}]


def test_default_rate_samples_a_handful(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "ten.mp4", frames=10, fps=1)  # 10 s
    info = probe(clip, Settings())  # VIDEO_FPS 0.5
    assert (info.frames, info.duration_s) == (5, 10.0)
    assert [f.source_frame for f in sample_frames(clip, info)] == [0, 2, 4, 6, 8]
    capped = probe(clip, Settings(video_fps=10, video_max_frames=4))
    assert capped.frames == 4 and capped.sample_fps == pytest.approx(0.4)


def test_frames_are_decoded_one_at_a_time(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    real_open = clip_module._open

    class Counting:  # the real container, counting frames as they decode
        def __init__(self, path: Path) -> None:
            self.inner = real_open(path)
            self.streams = self.inner.streams

        def decode(self, stream):
            for frame in self.inner.decode(stream):
                decoded.append(1)
                yield frame

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.inner.close()

    monkeypatch.setattr(clip_module, "_open", Counting)
    at_call: list[int] = []

    class Watching(SquareModel):
        def generate(self, image, prompt, **decoding):
            at_call.append(len(decoded))
            return super().generate(image, prompt, **decoding)

    _track(_services(Watching()), clip)
    assert at_call == list(range(1, 11))  # frame n is analysed before n+1 decodes


def test_stop_ends_between_frames(clip: Path) -> None:
    cancel = threading.Event()

    async def stop_after_three(n: int, total: int) -> None:
        if n == 4:
            cancel.set()

    model = SquareModel()
    result = _track(
        _services(model), clip, hooks=Hooks(cancel=cancel), on_frame=stop_after_three
    )
    assert result.stopped and len(result.frames) <= 4
    assert len(model.calls) <= 4


@pytest.mark.parametrize(
    ("settings", "make", "expectation"),
    [
        ({}, "clip", does_not_raise()),  # the 1 s clip
        (
            {"video_max_seconds": 0.5},
            "clip",
            pytest.raises(UserInputError, match="VIDEO_MAX_SECONDS"),
        ),  # too long
        (
            {"video_max_mb": 1},
            "big",
            pytest.raises(UserInputError, match="VIDEO_MAX_MB"),
        ),  # too big
        ({}, "png", pytest.raises(UserInputError, match="not a video")),  # an image
        (
            {},
            "junk",
            pytest.raises(UserInputError, match="not a video"),
        ),  # random bytes
        (
            {},
            "cut",
            pytest.raises(UserInputError, match=r"not a video|no frames"),
        ),  # truncated
        (
            {},
            "empty",
            pytest.raises(UserInputError, match="no video frames"),
        ),  # 0 frames
        (
            {"max_image_pixels": 1000},
            "clip",
            pytest.raises(UserInputError, match="MAX_IMAGE_PIXELS"),
        ),  # huge frames
    ],
)
def test_limits(tmp_path: Path, settings, make, expectation) -> None:
    path = tmp_path / "upload.mp4"
    if make == "clip":
        make_clip(path)
    elif make == "big":
        path.write_bytes(b"\0\0\0\x18ftypisom" + b"\0" * MB)
    elif make == "png":
        from PIL import Image

        Image.new("RGB", (32, 32)).save(path, format="PNG")
    elif make == "junk":
        path.write_bytes(bytes(range(256)) * 40)
    elif make == "cut":
        path.write_bytes(make_clip(tmp_path / "whole.mp4").read_bytes()[:200])
    elif make == "empty":
        make_sound_only(path)
    with expectation:
        probe(path, Settings(**settings))


def test_tracker_keeps_ids_when_order_changes() -> None:
    tracker = Tracker()
    car = lambda x: Detection("car", (x, 10, x + 40, 50))  # noqa: E731
    dog = lambda x: Detection("dog", (x, 60, x + 40, 100))  # noqa: E731
    assert tracker.update([car(0), dog(100)]) == [1, 2]
    assert tracker.update([dog(90), car(10)]) == [2, 1]  # listed the other way
    assert tracker.update([car(20)]) == [1]  # the dog unseen
    assert tracker.update([dog(70), car(30)]) == [2, 1]  # ... and back
    assert tracker.update([Detection("car", (300, 300, 340, 340))]) == [3]  # far: new


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("track the cars", "detect car"),  # track = detect on each frame
        ("segment the dog in this clip", "segment dog"),  # "in this clip" dropped
        ("detect people in the video", "detect people"),
        ("follow the red square", "detect red square"),
        ("Track the square.", "detect square"),
    ],
)
def test_video_request(text: str, prompt: str) -> None:
    assert video_request(text).prompt == prompt


def test_video_request_needs_objects() -> None:
    with pytest.raises(UserInputError, match="track the cars"):
        video_request("caption this")
