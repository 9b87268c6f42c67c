"""core.kept: a "look closely" turn's objects survive JSON exactly, and a
hostile snapshot is refused with a clear message before pycocotools reads it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from core.conversation import Conversation, ResultSummary
from core.kept import MAX_KEPT_OBJECTS, keep_objects, restore_objects, rle_runs
from core.types import Detection, Intent

SIZE = (120, 90)
PIXELS = 40_000_000  # MAX_IMAGE_PIXELS


def detections(seed: int = 0) -> list[Detection]:
    rng = np.random.default_rng(seed)
    ring = np.zeros((30, 40), dtype=bool)
    ring[5:25, 5:35] = True
    ring[10:20, 12:28] = False  # a hole: RLE keeps it
    return [
        Detection(
            "cat",
            (10, 20, 50, 50),
            mask_crop=ring,
            mask_origin_xy=(10, 20),
            image_wh=SIZE,
        ),
        Detection(None, (0, 0, 120, 90), image_wh=SIZE),  # box only, no label
        Detection(  # the whole photo: its runs start with 0 (no False first)
            "whole",
            (0, 0, 120, 90),
            mask_crop=np.ones((90, 120), dtype=bool),
            mask_origin_xy=(0, 0),
            image_wh=SIZE,
        ),
        Detection(  # one pixel wide
            "line",
            (7, 7, 8, 30),
            mask_crop=np.ones((23, 1), dtype=bool),
            mask_origin_xy=(7, 7),
            image_wh=SIZE,
        ),
        Detection("flat", (5, 9, 5, 9), image_wh=SIZE),  # an empty box
        Detection(
            "grüne Flasche",
            (60, 10, 119, 89),
            mask_crop=rng.random((79, 59)) < 0.5,
            mask_origin_xy=(60, 10),
            image_wh=SIZE,
        ),
    ]


def test_round_trip_through_json_is_exact() -> None:
    original = detections()
    kept = json.loads(json.dumps(keep_objects(original)))
    restored = restore_objects(kept, SIZE, max_pixels=PIXELS)
    assert len(restored) == 6
    for before, after in zip(original, restored, strict=True):
        assert after.label == before.label
        assert after.box_px == before.box_px
        assert after.has_mask == before.has_mask
        assert after.image_wh == SIZE
        if before.has_mask:
            assert np.array_equal(after.mask, before.mask)
    assert restored[0].mask[15, 20] == np.False_  # the hole
    assert "mask" not in kept[1]


def test_rle_runs_read_pycocotools_strings() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = np.asfortranarray(rng.random((h, w)) < rng.random(), dtype=np.uint8)
        counts = mask_utils.encode(mask)["counts"].decode()
        runs = rle_runs(counts)
        flat = mask.flatten(order="F")
        assert sum(runs) == h * w
        assert sum(runs[1::2]) == int(flat.sum())  # odd runs are the ones
        assert runs[0] == int(np.argmax(flat)) if flat.any() else runs == [h * w]


def _kept() -> dict:
    return keep_objects(detections()[:1])[0]


def _with(**changes) -> list:
    item = _kept()
    for key, value in changes.items():
        if key.startswith("mask_"):
            item["mask"][key[5:]] = value
        else:
            item[key] = value
    return [item]


@pytest.mark.parametrize(
    ("objects", "phrase"),
    [
        (["not an object"], "expected an object, got str"),
        (_with(label=5), "label must be text or null, got int"),
        (_with(box=[1, 2, 3]), "box must be 4 integers"),
        (_with(box=[1, 2, 3, True]), "box must be 4 integers"),
        (_with(box=[0, 0, 500, 50]), "is not on the 120x90 photo"),
        (_with(mask_size=[0, 5]), "size >= 1x1"),
        (_with(mask_size=[30, 40, 1]), "mask size must be 2 integers"),
        (_with(mask_counts=5), "RLE counts"),
        (_with(mask_counts="0~~"), "outside '0'..'o'"),
        (_with(mask_counts="0p"), "a character outside '0'..'o': 'p'"),
        (_with(mask_origin=[1]), "mask origin must be 2 integers"),
        (_with(mask_counts="l"), "mask RLE ends in the middle of a number"),
        # would make pycocotools write far past its buffer
        (
            _with(mask_counts=keep_objects(detections()[-1:])[0]["mask"]["counts"]),
            "must cover 40x30 = 1200 pixels",
        ),
        (_with(mask_size=[9000, 9000]), "larger than the photo"),
        (_with(mask_origin=[100, 80]), "must lie inside"),
        ([{"box": [0, 0, 1, 1]}] * (MAX_KEPT_OBJECTS + 1), "at most 1000"),
        ([{"label": "x"}], "kept object 1 is malformed: 'box'"),
    ],
)
def test_hostile_objects_are_refused_clearly(objects, phrase) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        restore_objects(objects, SIZE, max_pixels=PIXELS)
    assert phrase in str(caught.value)


def test_exactly_the_most_kept_objects_are_accepted() -> None:
    boxes = [{"box": [0, 0, 1, 1]}] * MAX_KEPT_OBJECTS
    assert len(restore_objects(boxes, SIZE, max_pixels=PIXELS)) == MAX_KEPT_OBJECTS


def test_a_negative_run_is_refused() -> None:
    # "1" "0" "O": runs 1, 0, -1 (0x1F with the sign bit 0x10 set)
    assert rle_runs("10O") == [1, 0, -1]
    item = {"box": [0, 0, 1, 1], "mask": {"origin": [0, 0], "size": [1, 2]}}
    item["mask"]["counts"] = "12O"  # 1 + 2 - 1 = 2 pixels, but a run is negative
    with pytest.raises(ValueError, match="non-negative runs"):
        restore_objects([item], (10, 10), max_pixels=PIXELS)


def test_a_tiled_turn_survives_the_state_snapshot() -> None:
    chat = Conversation()
    record = chat.add_image("a.jpg", "/x/001.jpg", SIZE)
    summary = ResultSummary(
        "<loc0001> cat",
        ("cat", None, "grüne Flasche"),
        tiles=4,
        objects=keep_objects(detections()),
    )
    chat.record(record.id, Intent(task="segment", prompt="segment cat"), summary)
    again = Conversation.from_dict(json.loads(json.dumps(chat.to_dict())))
    turn = again.last_turn()
    assert turn.summary.tiles == 4
    restored = restore_objects(turn.summary.objects, SIZE, max_pixels=PIXELS)
    assert [d.box_px for d in restored] == [d.box_px for d in detections()]
    assert np.array_equal(restored[2].mask, detections()[2].mask)
