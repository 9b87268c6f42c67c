"""Starters' sample photos (chat.samples): bundled, valid, and their requests run."""

from __future__ import annotations

import pytest

from chat.samples import MARK, SAMPLES, sample_for, sample_rgb, write_sample
from core.images import load_image
from core.intent.parse import parse_intent

SIZES_WH = {"chelsea": (451, 300), "astronaut": (512, 512), "coffee": (600, 400)}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.label for s in SAMPLES])
def test_each_starter_photo_ships_and_passes_the_upload_checks(sample, tmp_path):
    path = write_sample(sample, tmp_path)
    image = load_image(path.read_bytes(), max_pixels=40_000_000)
    assert image.mode == "RGB" and image.size == SIZES_WH[sample.photo]
    assert write_sample(sample, tmp_path) == path  # written once, reused


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.label for s in SAMPLES])
def test_each_starter_message_runs_the_model(sample):
    intent = parse_intent(sample.message.removesuffix(MARK))
    assert intent.action == "run" and intent.prompt
    assert "sample" not in intent.prompt


@pytest.mark.parametrize(
    ("text", "photo"),
    [
        ("segment the cat (sample photo)", "chelsea"),  # case: exactly a starter
        ("  Segment   the CAT (sample photo) ", "chelsea"),  # case: case and spaces
        ("segment the cat", None),  # case: typed before attaching a photo
        ("segment the dog", None),  # case: typed, not a starter
        ("", None),  # case: empty
    ],
)
def test_sample_for(text, photo):
    found = sample_for(text)
    assert (found.photo if found else None) == photo


def test_sample_pixels_are_the_photo_not_a_blank():
    pixels = sample_rgb(SAMPLES[0]).getextrema()
    assert all(high - low > 100 for low, high in pixels)  # a real photo's range
