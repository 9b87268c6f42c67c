"""Attack: a saved state's "look closely" turn claims sizes that cost memory.

``core.kept`` rebuilt masks from a state.json, trusting the photo size it
claims: a 16-character RLE said "one 20736x20736 mask" and pycocotools
allocated 429 MB (and as much again as bool). Now every kept object is bound
by its photo before anything is decoded: the photo at most MAX_IMAGE_PIXELS,
each mask on the photo with runs covering exactly its size, all masks
together a bounded number of photos. Checked through the service's replay of a
turn (the chat's undo, export and redraw call it), with the memory it allocated.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from core import kept
from core.conversation import Conversation, ResultSummary
from core.errors import UserInputError
from core.service.replay import replay_turn
from core.types import Intent

MAX_PIXELS = 10_000_000  # the server's MAX_IMAGE_PIXELS in these tests
REFUSED_BEFORE_DECODING = 1_000_000  # bytes: ~17 kB when refused, 18 MB decoded


def rle(runs: list[int]) -> str:
    """pycocotools' compressed RLE string of ``runs`` (core.kept.rle_runs)."""
    out = []
    for index, value in enumerate(runs):
        if index > 2:
            value -= runs[index - 2]
        while True:
            code = value & 0x1F
            value >>= 5
            more = value != -1 if code & 0x10 else value != 0
            out.append(chr(code + (0x20 if more else 0) + 48))
            if not more:
                break
    return "".join(out)


def full_mask(width: int, height: int, origin=(0, 0)) -> dict:
    """A kept object whose mask is one solid ``width`` x ``height`` crop."""
    x0, y0 = origin
    return {
        "label": "cat",
        "box": [0, 0, 1, 1],
        "mask": {
            "origin": [x0, y0],
            "size": [height, width],
            "counts": rle([0, width * height]),
        },
    }


def crafted_state(size_wh: tuple[int, int], objects: list[dict]):
    """The turn and photo of a state.json whose tiled turn keeps ``objects``
    on a photo said to be ``size_wh`` (as read back from disk)."""
    chat = Conversation()
    record = chat.add_image("a.jpg", "/x/001.jpg", (10, 10))
    summary = ResultSummary("<loc0001> cat", ("cat",), tiles=4)
    chat.record(record.id, Intent(task="detect", prompt="detect cat"), summary)
    snapshot = json.loads(json.dumps(chat.to_dict()))
    snapshot["images"][0]["size_wh"] = list(size_wh)
    snapshot["turns"][0]["summary"]["objects"] = objects
    loaded = Conversation.from_dict(json.loads(json.dumps(snapshot)))
    return loaded.last_turn(), loaded.images[0]


async def replay_measured(size_wh, objects) -> tuple[str, int]:
    """(the refusal, bytes allocated at the peak) of replaying the turn."""
    turn, record = crafted_state(size_wh, objects)
    tracemalloc.start()
    try:
        with pytest.raises(UserInputError) as caught:
            replay_turn(turn, record.size_wh, None, max_pixels=MAX_PIXELS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value.message, peak


@pytest.mark.parametrize(
    ("size_wh", "objects", "phrase"),
    [
        (  # case: a 16-character RLE of a photo larger than any upload
            (4000, 4000),
            [full_mask(4000, 4000)],
            "MAX_IMAGE_PIXELS",
        ),
        (  # case: a mask that starts on the photo and runs off its edge
            (3000, 3000),
            [full_mask(3000, 3000, origin=(1, 0))],  # 9 MP: 18 MB decoded
            "must lie inside",
        ),
        (  # case: runs that do not cover the mask's size
            (1000, 1000),
            [
                {
                    **full_mask(1000, 1000),
                    "mask": {
                        **full_mask(1000, 1000)["mask"],
                        "counts": rle([0, 10**9]),
                    },
                }
            ],
            "must cover",
        ),
    ],
)
async def test_claimed_sizes_are_refused_before_decoding(size_wh, objects, phrase):
    message, peak = await replay_measured(size_wh, objects)
    assert phrase in message, message
    assert "ask again" in message
    assert peak < REFUSED_BEFORE_DECODING, f"{peak:,} bytes allocated: decoded"


async def test_masks_together_are_bounded_by_the_photo():
    photos = kept.MASK_PHOTOS
    objects = [full_mask(100, 100)] * (photos + 1)  # each one the whole photo
    message, _ = await replay_measured((100, 100), objects)
    assert f"more than {photos} times the photo" in message, message
