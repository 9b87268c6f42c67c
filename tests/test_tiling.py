"""core.tiling: tiles at the model's resolution, mapped back and merged exactly."""

from __future__ import annotations

import threading
from contextlib import nullcontext as does_not_raise
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from core.errors import UserInputError
from core.geometry import box_to_pixels
from core.intent import parse_intent
from core.pipeline import analyze, scale_detections
from core.tiling import analyze_tiled, parse_tiles, slices_for, tile_grid
from core.tokens import LOC_BINS
from core.types import Decoding, Detection
from tests.support.fakes import FakeModel

SEGS = "".join(f"<seg{v:03d}>" for v in range(16))


def loc(x1: int, y1: int, x2: int, y2: int) -> str:
    """PaliGemma's y-first loc tokens for a box given in bins (0..1023)."""
    return "".join(f"<loc{v:04d}>" for v in (y1, x1, y2, x2))


def tile_box(bins: tuple[int, int, int, int], tile_wh, offset_xy):
    """Where a tile-relative loc box must land in the original photo."""
    x1, y1, x2, y2 = box_to_pixels(tuple(b / LOC_BINS for b in bins), tile_wh)
    dx, dy = offset_xy
    return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


@pytest.mark.parametrize(
    ("spec", "expected", "expectation"),
    [
        ("auto", "auto", does_not_raise()),
        (None, "off", does_not_raise()),  # default
        (" OFF ", "off", does_not_raise()),  # spacing and case
        ("3x3", (3, 3), does_not_raise()),
        ("2\u00d71", (2, 1), does_not_raise()),  # the multiplication sign
        ("4x4", (4, 4), does_not_raise()),  # the largest grid
        ("1x2", (1, 2), does_not_raise()),  # one column
        ("2x1", (2, 1), does_not_raise()),
        ("5x1", None, pytest.raises(UserInputError, match=r"1\.\.4")),  # too many
        ("0x2", None, pytest.raises(UserInputError, match="NxM")),  # zero
        ("lots", None, pytest.raises(UserInputError, match="'auto', 'off'")),
    ],
)
def test_parse_tiles(spec, expected, expectation) -> None:
    with expectation:
        assert parse_tiles(spec) == expected


@pytest.mark.parametrize(
    ("size_wh", "grid"),
    [
        ((4032, 3024), (3, 3)),  # a 12 MP phone photo: "tile 3 of 9"
        ((1024, 768), (1, 1)),  # small enough as it is
        ((8000, 1000), (4, 1)),  # a panorama: capped at 4 per side
        ((1345, 1344), (2, 1)),
    ],
)
def test_auto_grid_from_the_photo_size(size_wh, grid) -> None:
    assert tile_grid("auto", size_wh) == grid
    assert tile_grid("off", size_wh) == (1, 1)


@pytest.mark.parametrize(
    ("grid", "size_wh"),
    [((3, 3), (4032, 3024)), ((2, 1), (1000, 500)), ((4, 2), (999, 333))],
)
def test_slices_cover_the_photo_in_exactly_the_grid(grid, size_wh) -> None:
    import supervision as sv

    slice_wh, overlap_wh = slices_for(grid, size_wh)
    offsets = sv.InferenceSlicer._generate_offset(size_wh, slice_wh, overlap_wh)
    assert len(offsets) == grid[0] * grid[1]
    covered = np.zeros(size_wh[::-1], dtype=bool)
    for x1, y1, x2, y2 in offsets:
        covered[y1:y2, x1:x2] = True
    assert covered.all()


def test_boxes_map_back_to_original_pixels_and_duplicates_merge() -> None:
    # 1000x500 in 2x1 tiles of 550x500 at x = 0 and x = 450
    image = Image.new("RGB", (1000, 500), "gray")
    intent = parse_intent("detect cat ; bird")
    cat_bins = (102, 205, 409, 819)  # in the whole photo
    bird_bins = (512, 512, 614, 614)  # small, found only in the second tile
    cat_in_tile_1 = (186, 205, 745, 819)  # the same cat, seen by tile 1
    model = (
        FakeModel()
        .enqueue(f"{loc(*cat_bins)} cat")  # the whole photo: only the cat
        .enqueue(f"{loc(*cat_in_tile_1)} cat")  # tile 1 (x 0..550)
        .enqueue(f"{loc(*bird_bins)} bird")  # tile 2 (x 450..1000)
    )
    progress = []
    result = analyze_tiled(
        image, intent, model, (2, 1), on_tile=lambda i, n: progress.append((i, n))
    )
    assert [call["image_size"] for call in model.calls] == [
        (1000, 500),
        (550, 500),
        (550, 500),
    ]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    boxes = {d.label: d.box_px for d in result.detections}
    assert len(result.detections) == 2, result.detections  # one cat, one bird
    assert boxes["bird"] == tile_box(bird_bins, (550, 500), (450, 0))
    whole_cat = tile_box(cat_bins, (1000, 500), (0, 0))
    tile_cat = tile_box(cat_in_tile_1, (550, 500), (0, 0))
    union = (
        min(whole_cat[0], tile_cat[0]),
        min(whole_cat[1], tile_cat[1]),
        max(whole_cat[2], tile_cat[2]),
        max(whole_cat[3], tile_cat[3]),
    )
    assert boxes["cat"] == union
    assert result.timings_s["tiles"] == 2
    assert result.raw_text == f"{loc(*cat_bins)} cat"  # the whole-photo answer


def test_masks_come_back_full_size_inside_their_tile() -> None:
    image = Image.new("RGB", (1000, 500), "gray")
    intent = parse_intent("segment bird")
    bird_bins = (512, 512, 614, 614)
    model = (
        FakeModel()
        .enqueue("")  # the whole photo sees nothing
        .enqueue("")  # neither does tile 1
        .enqueue(f"{loc(*bird_bins)} {SEGS} bird")  # tile 2
    )
    result = analyze_tiled(image, intent, model, (2, 1))
    (bird,) = result.detections
    assert bird.mask.shape == (500, 1000) and bird.mask.dtype == bool
    x1, y1, x2, y2 = tile_box(bird_bins, (550, 500), (450, 0))
    assert bird.box_px == (x1, y1, x2, y2)
    ys, xs = np.nonzero(bird.mask)
    assert len(xs) > 0
    assert (xs.min(), ys.min()) >= (x1, y1) and (xs.max(), ys.max()) < (x2, y2)


def test_a_segment_answer_with_a_missing_mask_keeps_it_missing() -> None:
    image = Image.new("RGB", (1000, 500), "gray")
    model = (
        FakeModel()
        .enqueue(f"{loc(0, 0, 200, 200)} {SEGS} cat ; {loc(600, 600, 900, 900)} dog")
        .enqueue("")
        .enqueue("")
    )
    result = analyze_tiled(image, parse_intent("segment cat ; dog"), model, (2, 1))
    masks = {d.label: d.mask for d in result.detections}
    assert masks["cat"] is not None and masks["dog"] is None


@pytest.mark.parametrize("request_text", ["caption en", "detect cat"])
def test_no_tiles_for_text_tasks_or_a_1x1_grid(request_text) -> None:
    model = FakeModel().enqueue("a cat")
    grid = (1, 1) if request_text == "detect cat" else (3, 3)
    analyze_tiled(
        Image.new("RGB", (4000, 3000)), parse_intent(request_text), model, grid
    )
    assert len(model.calls) == 1


class QuadrantModel:
    """Answers by the look's colour (a cat where the tile is red), so the
    answers do not depend on the order tiles run in; tiles wait at a barrier
    of ``batch_max`` parties, which only opens if that many run at once."""

    def __init__(self, batch_max: int, whole_wh: tuple[int, int]) -> None:
        self.batch_max = batch_max
        self.whole_wh = whole_wh
        self.barrier = threading.Barrier(batch_max, timeout=30)

    def generate(self, image, prompt, **decoding):
        if image.size != self.whole_wh and self.batch_max > 1:
            self.barrier.wait()  # BrokenBarrierError: tiles did not run together
        red = np.asarray(image)[..., 0].mean() > 100
        return f"{loc(256, 256, 768, 768)} cat" if red else ""

    def decode_masks(self, seg_indices):
        raise AssertionError("detect decodes no masks")


def test_tiles_run_as_wide_as_the_engine_batches_with_the_same_result() -> None:
    pixels = np.zeros((800, 800, 3), dtype=np.uint8)
    pixels[:400, :400, 0] = 255  # the top-left tile is red
    image = Image.fromarray(pixels)
    intent = parse_intent("detect cat")
    together = analyze_tiled(image, intent, QuadrantModel(4, (800, 800)), (2, 2))
    one_by_one = analyze_tiled(image, intent, QuadrantModel(1, (800, 800)), (2, 2))
    assert [d.box_px for d in together.detections] == [
        d.box_px for d in one_by_one.detections
    ]
    assert len(together.detections) == 1  # only the red tile has a cat
    assert together.timings_s["tiles"] == 4


def test_scale_detections_to_the_original_pixels() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[3:17, 4:26] = True
    mask[8:12, 10:20] = False  # a hole
    small = [
        Detection(
            "cat",
            (10, 6, 40, 26),
            mask_crop=mask,
            mask_origin_xy=(10, 6),
            image_wh=(50, 40),
        ),
        Detection("box", (45, 35, 50, 40), image_wh=(50, 40)),
    ]
    big = scale_detections(small, (50, 40), (100, 80))
    assert [d.box_px for d in big] == [(20, 12, 80, 52), (90, 70, 100, 80)]
    assert big[0].image_wh == (100, 80) and not big[1].has_mask
    expected = np.kron(small[0].mask, np.ones((2, 2), dtype=bool))  # nearest x2
    assert np.array_equal(big[0].mask, expected)


def test_merged_masks_are_the_union_of_the_looks_masks() -> None:
    image = Image.new("RGB", (1000, 500), "gray")
    intent = parse_intent("segment cat ; dog")
    whole_answer = f"{loc(102, 205, 409, 819)} {SEGS} cat"
    tile_answer = (
        f"{loc(186, 205, 745, 819)} {SEGS} cat ; {loc(0, 0, 90, 90)} {SEGS} dog"
    )
    model = FakeModel().enqueue(whole_answer).enqueue(tile_answer).enqueue("")
    result = analyze_tiled(image, intent, model, (2, 1))
    # each look on its own, through the plain pipeline, then united by hand
    whole = analyze(image, intent, FakeModel().enqueue(whole_answer)).detections[0]
    tile = analyze(
        image.crop((0, 0, 550, 500)), intent, FakeModel().enqueue(tile_answer)
    )
    union = whole.mask.copy()
    union[:, :550] |= tile.detections[0].mask
    dog = np.zeros((500, 1000), dtype=bool)
    dog[:, :550] = tile.detections[1].mask
    found = {d.label: d for d in result.detections}
    assert sorted(found) == ["cat", "dog"]
    assert np.array_equal(found["cat"].mask, union)
    assert np.array_equal(found["dog"].mask, dog)  # alone: moved, not merged
    assert found["dog"].box_px == tile.detections[1].box_px


def test_column_runs_are_cocos_runs() -> None:
    from pycocotools import mask as mask_utils

    from core.kept import rle_runs
    from core.tiling import column_runs

    rng = np.random.default_rng(3)
    crops = [np.ones((3, 4), dtype=bool), np.zeros((2, 2), dtype=bool)]
    crops += [rng.random((h, w)) < 0.5 for h, w in rng.integers(1, 30, (40, 2))]
    for crop in crops:
        coco = mask_utils.encode(np.asfortranarray(crop, dtype=np.uint8))
        assert column_runs(crop).tolist() == rle_runs(coco["counts"].decode())


def test_a_region_is_tiled_and_mapped_back_onto_the_photo() -> None:
    image = Image.new("RGB", (1000, 500), "gray")
    answers = [
        f"{loc(102, 205, 409, 819)} {SEGS} cat",
        f"{loc(512, 512, 614, 614)} {SEGS} bird",
        "",
    ]
    intent = parse_intent("region 400,0 to 1000,500: segment cat ; bird")
    assert intent.region is not None
    model = FakeModel()
    for answer in answers:
        model.enqueue(answer)
    result = analyze_tiled(image, intent, model, (2, 1))
    alone = FakeModel()
    for answer in answers:
        alone.enqueue(answer)
    plain = replace(intent, region=None)
    crop = analyze_tiled(image.crop((400, 0, 1000, 500)), plain, alone, (2, 1))
    assert model.calls[0]["image_size"] == (600, 500)  # the region, whole
    assert result.intent == intent and result.image_size_wh == (1000, 500)
    assert len(result.detections) == len(crop.detections) == 2
    for on_photo, on_crop in zip(result.detections, crop.detections, strict=True):
        x1, y1, x2, y2 = on_crop.box_px
        assert on_photo.box_px == (x1 + 400, y1, x2 + 400, y2)
        assert np.array_equal(on_photo.mask[:, 400:], on_crop.mask)
        assert not on_photo.mask[:, :400].any()


def test_a_region_off_the_photo_is_refused() -> None:
    intent = parse_intent("region 2000,0 to 3000,500: detect cat")
    with pytest.raises(UserInputError, match="not on this photo"):
        analyze_tiled(Image.new("RGB", (1000, 500)), intent, FakeModel(), (2, 1))


@pytest.mark.parametrize(
    "request_text", ["detect cat", "region 0,0 to 1000,500: detect cat"]
)
def test_decoding_options_cancel_and_the_cap_reach_every_look(request_text) -> None:
    stop = threading.Event()
    three = " ; ".join(
        f"{loc(10 + 100 * i, 10, 60 + 100 * i, 60)} cat" for i in range(3)
    )
    sampled = Decoding(preset="nucleus 0.3")
    for grid, looks in (((2, 1), 3), ((1, 1), 1)):
        model = FakeModel()
        for _ in range(looks):
            model.enqueue(three)
        progress = []
        result = analyze_tiled(
            Image.new("RGB", (1000, 500)),
            parse_intent(request_text),
            model,
            grid,
            decoding=sampled,
            max_new_tokens=77,
            cancel=stop,
            max_detections=2,
            on_tile=lambda n, total, seen=progress: seen.append((n, total)),
        )
        assert len(model.calls) == looks
        expected = sampled.generate_kwargs(77)
        for call in model.calls:
            assert {k: call[k] for k in expected} == expected, call
            assert call["cancel"] is stop
        assert len(result.detections) == 2  # the cap, on one look or merged
        assert progress == ([(1, 3), (2, 3), (3, 3)] if looks == 3 else [])


def test_different_labels_are_never_merged_and_the_cap_counts_drops() -> None:
    image = Image.new("RGB", (1000, 500), "gray")
    far = " ; ".join(f"{loc(10 + 100 * i, 10, 60 + 100 * i, 60)} cat" for i in range(3))
    model = (
        FakeModel()
        .enqueue(f"{loc(102, 205, 409, 819)} cat ; {far}")
        .enqueue(f"{loc(186, 205, 745, 819)} dog")  # where the cat is, but a dog
        .enqueue("")
    )
    full = analyze_tiled(image, parse_intent("detect cat ; dog"), model, (2, 1))
    labels = sorted(d.label for d in full.detections)
    assert labels == ["cat", "cat", "cat", "cat", "dog"]
    assert full.detections_dropped == 0
    model.enqueue(f"{loc(102, 205, 409, 819)} cat ; {far}")
    model.enqueue(f"{loc(186, 205, 745, 819)} dog").enqueue("")
    capped = analyze_tiled(
        image, parse_intent("detect cat ; dog"), model, (2, 1), max_detections=4
    )
    assert len(capped.detections) == 4
    assert capped.detections_dropped == 1


def test_box_only_and_empty_boxes_survive_the_merge() -> None:
    from core.tiling import from_supervision, to_supervision

    ring = np.ones((4, 6), dtype=bool)
    ring[1:3, 2:4] = False
    found = [
        Detection(
            "cat",
            (10, 20, 16, 24),
            mask_crop=ring,
            mask_origin_xy=(10, 20),
            image_wh=(50, 40),
        ),
        Detection("dog", (5, 9, 5, 9), image_wh=(50, 40)),  # empty, no mask
        Detection("cow", (40, 30, 50, 40), image_wh=(50, 40)),  # no mask
    ]
    labels: dict[str, int] = {}
    back = from_supervision(
        to_supervision(found, (50, 40), 1.0, labels), {v: k for k, v in labels.items()}
    )
    assert [(d.label, d.box_px, d.has_mask) for d in back] == [
        ("cat", (10, 20, 16, 24), True),
        ("dog", (5, 9, 5, 9), False),
        ("cow", (40, 30, 50, 40), False),
    ]
    assert np.array_equal(back[0].mask, found[0].mask)


@pytest.mark.parametrize(
    ("batch_max", "workers"), [(4, 4), (1, 1), (0, 1), ("4", 1), (None, 1)]
)
def test_batch_workers(batch_max, workers) -> None:
    from core.tiling import batch_workers

    class Engine:
        pass

    engine = Engine()
    if batch_max is not None:
        engine.batch_max = batch_max
    assert batch_workers(engine) == workers
