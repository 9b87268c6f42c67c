"""Exports: COCO RLE/polygons, YOLO-seg, mask polygons, the ZIP bundle."""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.export import (
    ExportItem,
    category_name,
    mask_to_rle,
    masks_zip,
    rle_to_mask,
    safe_name,
    to_coco,
    to_yolo_seg,
    unique_stems,
    yolo_class_names,
)
from core.export.masks import (
    mask_to_polygons,
    polygon_to_mask,
    polygons_to_mask,
    rle_area,
    rle_bbox,
)
from core.types import Detection

# Shapes ---------------------------------------------------------------------


def _grid(size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    width, height = size_wh
    return np.mgrid[0:height, 0:width]


def disc(size_wh=(77, 61), centre=(38, 30), radius=20.0) -> np.ndarray:
    yy, xx = _grid(size_wh)
    return np.hypot(xx - centre[0], yy - centre[1]) < radius


def rectangle(size_wh=(77, 61), box=(10, 5, 50, 40)) -> np.ndarray:
    yy, xx = _grid(size_wh)
    x1, y1, x2, y2 = box
    return (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)


def l_shape(size_wh=(77, 61)) -> np.ndarray:
    return rectangle(size_wh, (5, 5, 20, 55)) | rectangle(size_wh, (5, 40, 60, 55))


def c_shape(size_wh=(77, 61)) -> np.ndarray:
    outer = rectangle(size_wh, (10, 5, 60, 55))
    return outer & ~rectangle(size_wh, (25, 20, 61, 40))  # opening on the right


def ring(size_wh=(77, 61)) -> np.ndarray:
    return disc(size_wh, radius=25) & ~disc(size_wh, radius=8)


def two_blobs(size_wh=(77, 61)) -> np.ndarray:
    return disc(size_wh, (15, 15), 10) | rectangle(size_wh, (40, 30, 70, 55))


def border_ellipse(size_wh=(77, 61)) -> np.ndarray:
    yy, xx = _grid(size_wh)
    return (yy / 25.0) ** 2 + ((xx - size_wh[0] + 1) / 30.0) ** 2 < 1  # top-right


def random_blobs(size_wh=(53, 37), seed=0) -> np.ndarray:
    """Seeded blobs: coarse noise upscaled and thresholded, ragged and multi-part."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.random((6, 8)).astype(np.float32))
    return np.asarray(coarse.resize(size_wh, Image.Resampling.BILINEAR)) > 0.55


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def item_of(masks, labels=None, file_name="photo.jpg") -> ExportItem:
    height, width = masks[0].shape
    labels = labels or ["obj"] * len(masks)
    dets = []
    for mask, label in zip(masks, labels, strict=True):
        ys, xs = np.nonzero(mask)
        box = (
            (0, 0, 1, 1)
            if len(xs) == 0
            else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        )
        dets.append(Detection(label, tuple(int(v) for v in box), mask))
    return ExportItem(file_name, (width, height), dets)


def write_and_load(tmp_path: Path, coco: dict) -> COCO:
    path = tmp_path / "annotations.coco.json"
    path.write_text(json.dumps(coco), encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        return COCO(str(path))


# RLE ------------------------------------------------------------------------

RLE_MASKS = [
    random_blobs((53, 37), 0),  # odd size, multi-part
    random_blobs((1, 9), 1),  # one column
    random_blobs((31, 1), 2),  # one row
    np.ones((13, 17), bool),  # full: touches every border
    np.zeros((13, 17), bool),  # empty
    border_ellipse(),  # touches top and right borders
    ring(),  # hole kept by RLE
    rectangle((7, 5), (6, 4, 7, 5)),  # single bottom-right pixel
]
RLE_IDS = ["blobs", "column", "row", "full", "empty", "border", "ring", "pixel"]


@pytest.mark.parametrize("mask", RLE_MASKS, ids=RLE_IDS)
def test_rle_round_trip_is_exact(mask: np.ndarray) -> None:
    rle = json.loads(json.dumps(mask_to_rle(mask)))  # survives JSON
    assert isinstance(rle["counts"], str)
    assert rle["size"] == list(mask.shape)
    decoded = rle_to_mask(rle)
    assert decoded.dtype == bool and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)
    raw = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    np.testing.assert_array_equal(raw.astype(bool), mask)
    assert rle_area(rle) == int(mask.sum())
    ys, xs = np.nonzero(mask)
    expected = (
        [0.0, 0.0, 0.0, 0.0]
        if len(xs) == 0
        else [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    )
    assert rle_bbox(rle) == [float(v) for v in expected]


def test_rle_to_mask_accepts_uncompressed_counts() -> None:
    mask = random_blobs((9, 7), 3)
    flat = mask.ravel(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    np.testing.assert_array_equal(rle_to_mask({"size": [7, 9], "counts": counts}), mask)


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((4, 4), np.uint8),  # uint8 is not bool
        np.zeros((1, 4, 4), bool),  # 3-D
        [[True]],  # not an array
    ],
)
def test_mask_to_rle_rejects_non_bool_2d(mask) -> None:
    with pytest.raises(ValueError, match=r"\(H, W\) bool"):
        mask_to_rle(mask)


# COCO -----------------------------------------------------------------------


def test_coco_loads_in_pycocotools_and_masks_decode_bit_for_bit(tmp_path) -> None:
    first = item_of(
        [random_blobs((53, 37), 4), border_ellipse((53, 37))], ["dog", "cat"]
    )
    second = item_of(
        [np.zeros((11, 9), bool), random_blobs((9, 11), 5), np.ones((11, 9), bool)],
        ["cat", None, "dog"],
        "b.png",
    )
    coco = write_and_load(tmp_path, to_coco([first, second]))
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) == 5
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
        "dog",
        "cat",
        "object",
    ]
    assert coco.loadImgs(2)[0] == {
        "id": 2,
        "file_name": "b.png",
        "width": 9,
        "height": 11,
    }
    expected = [d.mask for item in (first, second) for d in item.detections]
    for ann_id, mask in zip(sorted(coco.getAnnIds()), expected, strict=True):
        ann = coco.loadAnns(ann_id)[0]
        assert ann["iscrowd"] == 0 and ann["area"] == mask.sum()
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
    assert [a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=2))] == [
        2,
        3,
        1,
    ]


def _independent_ground_truth(masks, labels, size_wh) -> dict:
    """COCO ground truth written with pycocotools alone, from the source masks."""
    names = list(dict.fromkeys(labels))
    annotations = []
    for index, (mask, label) in enumerate(zip(masks, labels, strict=True), 1):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        annotations.append(
            {
                "id": index,
                "image_id": 7,
                "category_id": names.index(label) + 1,
                "segmentation": {**rle, "counts": rle["counts"].decode()},
                "area": float(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
            }
        )
    return {
        "images": [
            {
                "id": 7,
                "file_name": "photo.jpg",
                "width": size_wh[0],
                "height": size_wh[1],
            }
        ],
        "categories": [{"id": i, "name": n} for i, n in enumerate(names, 1)],
        "annotations": annotations,
    }


def _mask_ap(tmp_path, ground_truth: dict, export: dict) -> float:
    """COCOeval segm AP@[.5:.95] of the export's annotations as predictions,
    matched to the ground truth by file name and category name."""
    gt = write_and_load(tmp_path, ground_truth)
    image_ids = {i["file_name"]: i["id"] for i in ground_truth["images"]}
    category_ids = {c["name"]: c["id"] for c in ground_truth["categories"]}
    exported_images = {i["id"]: i["file_name"] for i in export["images"]}
    exported_names = {c["id"]: c["name"] for c in export["categories"]}
    results = [
        {
            "image_id": image_ids[exported_images[ann["image_id"]]],
            "category_id": category_ids[exported_names[ann["category_id"]]],
            "segmentation": ann["segmentation"],
            "score": 1.0,
        }
        for ann in export["annotations"]
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0]


def test_coco_eval_of_the_export_against_independent_ground_truth(tmp_path) -> None:
    masks = [disc(), ring(), random_blobs((77, 61), 6)]
    labels = ["a", "b", "a"]
    truth = _independent_ground_truth(masks, labels, (77, 61))
    export = to_coco([item_of(masks, labels)])
    assert _mask_ap(tmp_path, truth, export) == pytest.approx(1.0)  # AP@[.5:.95]
    # The same metric sees a wrong export: masks shifted by 12 pixels.
    shifted = [np.roll(mask, 12, axis=1) for mask in masks]
    assert _mask_ap(tmp_path, truth, to_coco([item_of(shifted, labels)])) < 0.5


@pytest.mark.parametrize(
    "labels, names, ids",
    [
        (["dog", "cat", "dog"], ["dog", "cat"], [1, 2, 1]),  # first appearance order
        ([None, "", "  "], ["object"], [1, 1, 1]),  # no label -> object
        ([" hot  dog ", "hot dog", "hot\tdog"], ["hot dog"], [1, 1, 1]),  # spaces
        (["chien", "chat 🐱", "犬"], ["chien", "chat 🐱", "犬"], [1, 2, 3]),  # unicode
        (["a/b", "line\nbreak", "a/b"], ["a/b", "line break"], [1, 2, 1]),  # odd chars
    ],
)
def test_coco_categories(labels, names, ids) -> None:
    masks = [rectangle((20, 10), (i, 0, i + 3, 5)) for i in range(len(labels))]
    coco = to_coco([item_of(masks, labels)])
    assert [c["name"] for c in coco["categories"]] == names
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(names) + 1))
    assert [a["category_id"] for a in coco["annotations"]] == ids


def test_coco_box_only_and_empty_mask_annotations(tmp_path) -> None:
    dets = [
        Detection("box", (2, 3, 12, 9)),  # no mask
        Detection("blank", (1, 1, 5, 5), np.zeros((10, 20), bool)),  # empty mask
    ]
    coco = write_and_load(tmp_path, to_coco([ExportItem("x.jpg", (20, 10), dets)]))
    box, blank = coco.loadAnns(coco.getAnnIds())
    assert box["segmentation"] == [] and box["bbox"] == [2.0, 3.0, 10.0, 6.0]
    assert box["area"] == 60.0
    assert blank["area"] == 0.0 and blank["bbox"] == [1.0, 1.0, 4.0, 4.0]
    assert not coco.annToMask(blank).any()


@pytest.mark.parametrize(
    "mask, parts",
    [
        (disc(), 1),  # convex
        (rectangle(), 1),  # convex, axis-aligned
        (l_shape(), 1),  # concave
        (c_shape(), 1),  # concave with an opening
        (two_blobs(), 2),  # multi-part
        (border_ellipse(), 1),  # touches the borders
    ],
    ids=["disc", "rectangle", "L", "C", "two-blobs", "border"],
)
def test_coco_polygons_rasterise_close_to_the_mask(tmp_path, mask, parts) -> None:
    coco = write_and_load(tmp_path, to_coco([item_of([mask])], polygons=True))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert isinstance(ann["segmentation"], list) and len(ann["segmentation"]) == parts
    assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
    assert iou(coco.annToMask(ann).astype(bool), mask) >= 0.9
    assert ann["area"] == mask.sum()


def test_coco_polygons_of_a_one_pixel_line_fall_back_to_its_exact_box(tmp_path) -> None:
    line = rectangle((30, 20), (4, 7, 25, 8))
    coco = write_and_load(tmp_path, to_coco([item_of([line])], polygons=True))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), line)


# Polygons -------------------------------------------------------------------


@pytest.mark.parametrize(
    "mask",
    [
        disc(),  # convex
        l_shape(),  # concave
        c_shape(),  # concave with an opening
        two_blobs(),  # two parts
        border_ellipse(),  # touches the borders
        np.ones((9, 13), bool),  # the whole image
    ],
    ids=["disc", "L", "C", "two-blobs", "border", "full"],
)
def test_polygons_of_hole_free_masks_rasterise_back_exactly(mask) -> None:
    height, width = mask.shape
    polygons = mask_to_polygons(mask)
    assert all(p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3 for p in polygons)
    np.testing.assert_array_equal(polygons_to_mask(polygons, (width, height)), mask)


def test_polygons_are_all_parts_largest_first_without_degenerate_ones() -> None:
    mask = two_blobs()
    mask[2, 70] = True  # single pixel: degenerate
    mask[58, 10:40] = True  # 1-pixel line: degenerate
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    areas = [polygon_to_mask(p, (77, 61)).sum() for p in polygons]
    assert areas == sorted(areas, reverse=True)
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []


def test_polygons_fill_holes() -> None:
    filled = polygons_to_mask(mask_to_polygons(ring()), (77, 61))
    np.testing.assert_array_equal(filled, disc(radius=25))


@pytest.mark.parametrize(
    "polygon, size_wh",
    [
        ([[0, 0], [3, 3]], (5, 5)),  # two vertices
        ([0, 1, 2, 3, 4, 5], (5, 5)),  # flat list, not (N, 2)
        ([[0, 0], [3, 0], [3, 3]], (0, 5)),  # empty image
    ],
)
def test_polygon_to_mask_rejects_bad_input(polygon, size_wh) -> None:
    with pytest.raises(ValueError, match="must be"):
        polygon_to_mask(polygon, size_wh)


# YOLO -----------------------------------------------------------------------

YOLO_LINE = re.compile(r"^\d+( (0|1)\.\d{6}){6,}$")


def yolo_to_mask(text: str, size_wh: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Union of all YOLO polygons in ``text`` and the number of lines."""
    lines = text.splitlines()
    polygons = []
    for line in lines:
        assert YOLO_LINE.match(line), line
        coords = np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2)
        assert ((coords >= 0) & (coords <= 1)).all()
        polygons.append(coords * size_wh)
    return polygons_to_mask(polygons, size_wh), len(lines)


@pytest.mark.parametrize(
    "mask, reference, lines",
    [
        (disc(), disc(), 1),  # convex
        (rectangle(), rectangle(), 1),  # convex, axis-aligned
        (l_shape(), l_shape(), 1),  # concave
        (c_shape(), c_shape(), 1),  # concave with an opening
        (two_blobs(), two_blobs(), 2),  # one line per part
        (ring(), disc(radius=25), 1),  # holes are filled in polygon formats
        (disc((20, 14), (10, 7), 4), disc((20, 14), (10, 7), 4), 1),  # small, odd size
    ],
    ids=["disc", "rectangle", "L", "C", "two-blobs", "ring", "small-disc"],
)
def test_yolo_polygons_rasterise_back(mask, reference, lines) -> None:
    height, width = mask.shape
    item = item_of([mask], ["thing"])
    text = to_yolo_seg(item, yolo_class_names([item]))
    restored, count = yolo_to_mask(text, (width, height))
    assert count == lines
    assert iou(restored, reference) >= 0.9


def test_yolo_box_only_and_class_ids() -> None:
    dets = [
        Detection("cat", (10, 20, 50, 40)),  # box only -> 4 corners of the box
        Detection("dog", (0, 0, 100, 50), rectangle((100, 50), (60, 10, 90, 30))),
        Detection("cat", (3, 3, 3, 9)),  # empty box: skipped, not a degenerate line
    ]
    item = ExportItem("a.jpg", (100, 50), dets)
    assert yolo_class_names([item]) == ["cat", "dog"]
    lines = to_yolo_seg(item, ["dog", "cat"]).splitlines()
    assert len(lines) == 2
    assert (
        lines[0]
        == "1 0.100000 0.400000 0.500000 0.400000 0.500000 0.800000 0.100000 0.800000"
    )
    assert lines[1].startswith("0 ")
    with pytest.raises(ValueError, match="not in class_names"):
        to_yolo_seg(item, ["dog"])


def test_yolo_sliver_mask_becomes_its_box() -> None:
    line = rectangle((40, 20), (5, 10, 35, 11))
    item = ExportItem("a.jpg", (40, 20), [Detection("wire", (0, 0, 40, 20), line)])
    restored, count = yolo_to_mask(to_yolo_seg(item, ["wire"]), (40, 20))
    assert count == 1 and restored[line].all() and iou(restored, line) >= 0.45


# Names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, expected",
    [
        ("dog", "dog"),  # plain
        ("hot dog", "hot_dog"),  # spaces
        ("café crème", "café_crème"),  # unicode kept
        ("犬", "犬"),  # CJK kept
        ("a/b\\c", "a_b_c"),  # path separators
        ("../../etc/passwd", "etc_passwd"),  # traversal
        ("bell\x07\nline", "bell_line"),  # control characters
        ('what?: "x" <y>|*', "what_x_y"),  # Windows-reserved
        ("...", "object"),  # nothing left
    ],
)
def test_safe_name(label, expected) -> None:
    assert safe_name(label, "object") == expected


@pytest.mark.parametrize(
    "file_names, expected",
    [
        (["a.png", "a.png", "A.jpg"], ["a", "a_2", "A_3"]),  # duplicates, any case
        (["labels.png"], ["labels_2"]),  # reserved for the YOLO folder
        (["dir/b.tar.gz", "C:\\x\\c d.jpg"], ["b.tar", "c_d"]),  # folders dropped
        (["", "..", ".hidden"], ["image", "image_2", "hidden"]),  # nothing usable
    ],
)
def test_unique_stems(file_names, expected) -> None:
    assert unique_stems(file_names, reserved={"labels"}) == expected


def test_category_name_keeps_one_line_per_class() -> None:
    assert category_name("line\nbreak\r\n") == "line break"
    assert category_name(None) == "object"


# ZIP ------------------------------------------------------------------------


def read_png(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "L"
    return np.asarray(image)


def test_masks_zip_contents_and_names() -> None:
    overlay = b"\x89PNG fake overlay bytes"
    first = item_of(
        [disc(), two_blobs(), l_shape()], ["dog", "dog", "a/b c"], "shots/photo.jpg"
    )
    first = ExportItem(
        first.file_name,
        first.size_wh,
        (*first.detections, Detection("box only", (1, 2, 3, 4))),
        overlay,
    )
    second = item_of([random_blobs((21, 15), 7)], ["ünï"], "photo.png")
    archive = zipfile.ZipFile(io.BytesIO(masks_zip([first, second])))
    assert archive.namelist() == [
        "annotations.coco.json",
        "classes.txt",
        "labels/photo.txt",
        "photo/01_dog.png",
        "photo/02_dog.png",
        "photo/03_a_b_c.png",
        "photo/overlay.png",
        "labels/photo_2.txt",
        "photo_2/01_ünï.png",
    ]
    expected = [*first.detections[:3], second.detections[0]]
    png_names = [n for n in archive.namelist() if re.search(r"/\d\d_", n)]
    for name, det in zip(png_names, expected, strict=True):
        pixels = read_png(archive.read(name))
        assert pixels.shape == det.mask.shape and set(np.unique(pixels)) <= {0, 255}
        np.testing.assert_array_equal(pixels == 255, det.mask)
    assert archive.read("photo/overlay.png") == overlay
    classes = ["dog", "a/b c", "box only", "ünï"]
    assert archive.read("classes.txt").decode() == "".join(c + "\n" for c in classes)
    assert archive.read("labels/photo.txt").decode() == to_yolo_seg(first, classes)
    coco = json.loads(archive.read("annotations.coco.json"))
    assert len(coco["annotations"]) == 5 and len(coco["images"]) == 2
    assert [c["name"] for c in coco["categories"]] == classes


def test_masks_zip_polygons_flag_reaches_the_json() -> None:
    archive = zipfile.ZipFile(io.BytesIO(masks_zip([item_of([disc()])], polygons=True)))
    ann = json.loads(archive.read("annotations.coco.json"))["annotations"][0]
    assert isinstance(ann["segmentation"], list)


def test_export_item_rejects_masks_of_another_size() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\) = \(10, 20\).*got \(20, 10\)"):
        ExportItem(
            "a.jpg", (20, 10), [Detection("x", (0, 0, 1, 1), np.ones((20, 10), bool))]
        )


# Zero objects ---------------------------------------------------------------


def test_zero_objects_give_valid_empty_files(tmp_path) -> None:
    empty = ExportItem("empty.jpg", (32, 24))
    coco_dict = to_coco([empty])
    assert coco_dict["annotations"] == [] and coco_dict["categories"] == []
    coco = write_and_load(tmp_path, coco_dict)
    assert coco.getImgIds() == [1] and coco.getAnnIds() == []
    assert to_yolo_seg(empty, yolo_class_names([empty])) == ""
    archive = zipfile.ZipFile(io.BytesIO(masks_zip([empty])))
    assert archive.namelist() == [
        "annotations.coco.json",
        "classes.txt",
        "labels/empty.txt",
    ]
    assert (
        archive.read("labels/empty.txt") == b"" and archive.read("classes.txt") == b""
    )
    assert json.loads(archive.read("annotations.coco.json"))["images"][0]["width"] == 32


def test_zero_images_give_a_zip_with_the_json(tmp_path) -> None:
    archive = zipfile.ZipFile(io.BytesIO(masks_zip([])))
    assert archive.namelist() == ["annotations.coco.json", "classes.txt"]
    coco = write_and_load(tmp_path, json.loads(archive.read("annotations.coco.json")))
    assert coco.getImgIds() == [] and coco.getCatIds() == []


def test_image_named_like_a_top_level_file_gets_its_own_folder():
    names = ["annotations.coco.json.png", "errors.json.png", "classes.txt.png"]
    items = [
        ExportItem(name, (8, 6), item_of([rectangle((8, 6), (1, 1, 5, 4))]).detections)
        for name in names
    ]
    with zipfile.ZipFile(io.BytesIO(masks_zip(items))) as archive:
        members = archive.namelist()
        coco = json.loads(archive.read("annotations.coco.json"))
    folders = {name.split("/")[0] for name in members if "/" in name} - {"labels"}
    assert len(folders) == 3  # one mask folder per image, none shadowing a file
    assert folders.isdisjoint({"annotations.coco.json", "errors.json", "classes.txt"})
    assert [i["file_name"] for i in coco["images"]] == names  # the real COCO file
    assert len([m for m in members if m.endswith("_obj.png")]) == 3
