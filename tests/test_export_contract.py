"""Exports, exactly: coordinates, ids, names and edge cases a user would notice.

Complements test_export.py (round trips and pycocotools); the cases here were
found by mutation testing (docs/testing.md, "core/export/").
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from core.export import (
    ExportItem,
    category_name,
    mask_file_names,
    masks_zip,
    safe_name,
    to_coco,
    to_yolo_seg,
    unique_stems,
)
from core.export.downloads import write_overlay, write_result_export
from core.export.formats import FORMATS
from core.export.masks import check_mask, mask_to_polygons, polygon_to_mask
from core.types import Detection


def block(size_wh: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    width, height = size_wh
    x1, y1, x2, y2 = box
    mask = np.zeros((height, width), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def pixels(size_wh: tuple[int, int], points: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros((size_wh[1], size_wh[0]), bool)
    for x, y in points:
        mask[y, x] = True
    return mask


# Polygons -------------------------------------------------------------------


def test_small_shapes_keep_their_outline_and_lines_without_area_are_dropped() -> None:
    square = block((6, 6), (1, 1, 3, 3))  # 2x2: area 1 between pixel centres
    (outline,) = mask_to_polygons(square)
    assert sorted(map(tuple, outline.tolist())) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    corner = pixels((5, 5), [(1, 1), (1, 2), (2, 2)])  # three pixels: a triangle
    (triangle,) = mask_to_polygons(corner)
    assert sorted(map(tuple, triangle.tolist())) == [(1, 1), (1, 2), (2, 2)]
    assert polygon_to_mask(triangle, (5, 5)).tolist() == corner.tolist()
    vee = pixels((5, 5), [(0, 0), (1, 1), (2, 0)])  # a "V": outline encloses nothing
    assert mask_to_polygons(vee) == []


def test_polygon_to_mask_sizes_and_type() -> None:
    triangle = [[0, 0], [0, 2], [2, 2]]
    column = polygon_to_mask([[0, 0], [0, 3], [0, 3]], (1, 4))  # 1 pixel wide
    assert column.dtype == np.bool_ and column.shape == (4, 1) and column.all()
    row = polygon_to_mask([[0, 0], [3, 0], [3, 0]], (4, 1))  # 1 pixel high
    assert row.shape == (1, 4) and row.all()
    filled = polygon_to_mask(triangle, (3, 3))
    assert filled.dtype == np.bool_ and filled.sum() == 6
    for size_wh in [(3, 0), (0, 3), (-1, 3)]:
        with pytest.raises(ValueError, match=r"size_wh must be positive"):
            polygon_to_mask(triangle, size_wh)


# Each bad mask and the exact reason given (what was expected, what came).
BAD_MASKS = [
    ([[True]], None, "mask must be an (H, W) bool array, got list"),
    (
        np.zeros((2, 3), np.uint8),
        None,
        "mask must be an (H, W) bool array, got (2, 3) uint8",
    ),
    (
        np.zeros((2, 3), bool),
        (2, 3),
        "mask must be (H, W) = (3, 2) for an image of size_wh (2, 3), got (2, 3)",
    ),
]


@pytest.mark.parametrize(("mask", "size_wh", "message"), BAD_MASKS)
def test_check_mask_says_what_it_expected(mask, size_wh, message) -> None:
    with pytest.raises(ValueError) as error:
        check_mask(mask, size_wh)
    assert str(error.value) == message


def test_check_mask_accepts_a_mask_of_the_image_size() -> None:
    mask = np.zeros((3, 2), bool)
    assert check_mask(mask, (2, 3)) is mask


# COCO -----------------------------------------------------------------------


def test_coco_header_and_ids() -> None:
    dets = [
        Detection("dog", (0, 0, 4, 4), block((10, 8), (1, 1, 3, 3))),
        Detection("cat", (2, 2, 6, 6)),
        Detection("dog", (5, 0, 7, 2)),
    ]
    items = [ExportItem("a.jpg", (10, 8), dets), ExportItem("b.jpg", (10, 8), dets)]
    coco = to_coco(items)
    info = coco["info"]
    created = datetime.fromisoformat(info["date_created"])
    assert created.utcoffset().total_seconds() == 0  # an aware UTC timestamp
    assert info == {
        "description": "paligemma-chat export",
        "version": "1.0",
        "year": created.year,
        "date_created": created.isoformat(timespec="seconds"),
    }
    assert coco["licenses"] == []
    assert coco["categories"] == [
        {"id": 1, "name": "dog", "supercategory": "object"},
        {"id": 2, "name": "cat", "supercategory": "object"},
    ]
    annotations = coco["annotations"]
    assert [a["id"] for a in annotations] == [1, 2, 3, 4, 5, 6]  # over all images
    assert [a["image_id"] for a in annotations] == [1, 1, 1, 2, 2, 2]


def test_coco_bbox_is_the_mask_tight_box_not_the_detection_box() -> None:
    mask = block((20, 10), (4, 2, 9, 7))
    det = Detection("dog", (0, 0, 20, 10), mask)  # the model's box is looser
    (ann,) = to_coco([ExportItem("a.jpg", (20, 10), [det])])["annotations"]
    assert ann["bbox"] == [4.0, 2.0, 5.0, 5.0] and ann["area"] == 25.0


def test_coco_zero_width_or_height_box_keeps_its_size() -> None:
    dets = [Detection("pole", (5, 1, 5, 9)), Detection("wire", (1, 4, 9, 4))]
    annotations = to_coco([ExportItem("a.jpg", (10, 10), dets)])["annotations"]
    assert [a["bbox"] for a in annotations] == [
        [5.0, 1.0, 0.0, 8.0],
        [1.0, 4.0, 8.0, 0.0],
    ]
    assert [a["area"] for a in annotations] == [0.0, 0.0]


def test_coco_polygons_run_through_pixel_centres() -> None:
    det = Detection("box", (2, 1, 6, 4), block((8, 6), (2, 1, 6, 4)))
    (ann,) = to_coco([ExportItem("a.jpg", (8, 6), [det])], polygons=True)["annotations"]
    (polygon,) = ann["segmentation"]
    vertices = sorted(zip(polygon[::2], polygon[1::2], strict=True))
    assert vertices == [(2.5, 1.5), (2.5, 3.5), (5.5, 1.5), (5.5, 3.5)]


def test_coco_polygons_of_an_empty_mask_are_empty() -> None:
    det = Detection("ghost", (1, 1, 5, 5), np.zeros((6, 8), bool))
    (ann,) = to_coco([ExportItem("a.jpg", (8, 6), [det])], polygons=True)["annotations"]
    assert ann["segmentation"] == [] and ann["area"] == 0.0


# YOLO -----------------------------------------------------------------------


def test_yolo_boxes_past_the_image_edge_are_clipped_to_it() -> None:
    det = Detection("cat", (-5, -2, 12, 6))  # a box-only object over the edges
    line = to_yolo_seg(ExportItem("a.jpg", (10, 4), [det]), ["cat"])
    assert (
        line
        == "0 0.000000 0.000000 1.000000 0.000000 1.000000 1.000000 0.000000 1.000000\n"
    )


def test_yolo_skips_a_box_without_height() -> None:
    det = Detection("wire", (1, 3, 8, 3))
    assert to_yolo_seg(ExportItem("a.jpg", (10, 4), [det]), ["wire"]) == ""


# ZIP ------------------------------------------------------------------------


def test_zip_defaults_to_exact_rle_and_compresses_the_json() -> None:
    mask = block((40, 30), (5, 5, 25, 20))
    dets = [Detection(f"object {i}", (5, 5, 25, 20), mask) for i in range(30)]
    data = masks_zip([ExportItem("a.jpg", (40, 30), dets)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        coco = json.loads(archive.read("annotations.coco.json"))
        info = archive.getinfo("annotations.coco.json")
    assert coco["annotations"][0]["segmentation"]["size"] == [30, 40]  # RLE
    assert info.compress_size < info.file_size / 2


# Names ----------------------------------------------------------------------


def test_mask_file_names_only_for_masked_objects_and_never_empty() -> None:
    dets = [
        Detection("/", (0, 0, 2, 2), block((4, 4), (0, 0, 2, 2))),
        Detection("box", (0, 0, 2, 2)),
        Detection("cat", (1, 1, 3, 3), block((4, 4), (1, 1, 3, 3))),
    ]
    item = ExportItem("a.jpg", (4, 4), dets)
    assert mask_file_names(item, "a") == ["a/01_object.png", None, "a/03_cat.png"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("XBOX.", "XBOX"),  # trims dots, not letters
        ("..hidden_", "hidden"),  # dots and underscores at both ends
        ("d" * 100, "d" * 64),  # 64 characters at most
        ("." * 10 + "d" * 70, "d" * 64),  # ends trimmed before cutting to 64
        ("d" * 63 + "_x", "d" * 63),  # and the cut end trimmed again
        ("zero\u200bwidth", "zero_width"),  # format characters
    ],
)
def test_safe_name_edges(label: str, expected: str) -> None:
    assert safe_name(label, "object") == expected


def test_unique_stems_keep_names_that_start_with_x() -> None:
    assert unique_stems(["X.png", "Xmas.jpg"]) == ["X", "Xmas"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("hot\u200bdog", "hot dog"),  # zero-width space (format character)
        ("bell\x07pepper", "bell pepper"),  # control character
        ("CZ car", "CZ car"),  # letters are not categories
    ],
)
def test_category_name_turns_invisible_characters_into_spaces(label, expected) -> None:
    assert category_name(label) == expected


# ExportItem -----------------------------------------------------------------


def test_export_item_normalises_its_size_and_detections() -> None:
    det = Detection("cat", (0, 0, 1, 1))
    item = ExportItem("a.jpg", (np.int64(4), 3.0), [det])
    assert item.size_wh == (4, 3) and type(item.size_wh[1]) is int
    assert item == ExportItem("a.jpg", (4, 3), (det,))
    assert to_coco([item])["images"][0] == {
        "id": 1,
        "file_name": "a.jpg",
        "width": 4,
        "height": 3,
    }
    assert ExportItem("a.jpg", (1, 1)).size_wh == (1, 1)


@pytest.mark.parametrize("size_wh", [(0, 5), (5, 0), (-1, 5), (5, -1)])
def test_export_item_refuses_an_empty_image(size_wh) -> None:
    with pytest.raises(ValueError) as error:
        ExportItem("a.jpg", size_wh)
    assert str(error.value) == f"size_wh must be positive, got {size_wh}"


# Downloads ------------------------------------------------------------------


def test_downloads_of_an_unnamed_image_are_called_image(tmp_path) -> None:
    det = Detection("cat", (1, 1, 3, 3), block((4, 4), (1, 1, 3, 3)))
    item = ExportItem("", (4, 4), [det])
    shown = write_overlay(tmp_path / "001.png", "", Image.new("RGB", (4, 4)))
    downloads = [
        write_result_export(tmp_path / "001.png", item, f.name) for f in FORMATS
    ]
    assert shown.name == "image-overlay.jpg"
    assert [d.name for d in downloads] == [
        "image.coco.json",
        "image-yolo.zip",
        "image-masks.zip",
        "image.labelstudio.json",
    ]
    # Each file's type (its suffix) is the type its download name promises.
    assert [d.path.suffix for d in downloads] == [".json", ".zip", ".zip", ".json"]
    assert json.loads(downloads[0].path.read_text(encoding="utf-8"))["images"]
