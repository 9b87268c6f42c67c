from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from PIL import Image

from core.export import ExportItem
from core.export.downloads import write_export_all, write_result_downloads
from core.types import Detection


def item(name="cat.png", detections=True) -> ExportItem:
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:20] = True
    dets = (Detection("cat", (10, 5, 20, 15), mask),) if detections else ()
    return ExportItem(name, (40, 30), dets)


def test_result_downloads_are_numbered_and_complete(tmp_path):
    stored = tmp_path / "001.png"
    overlay = Image.new("RGB", (40, 30), "red")
    first = write_result_downloads(stored, item(), overlay)
    second = write_result_downloads(stored, item(), overlay)
    assert [d.name for d in first] == [
        "cat-overlay.jpg",
        "cat-masks-coco-yolo.zip",
        "cat.coco.json",
    ]
    assert [d.inline for d in first] == [True, False, False]
    assert {d.path for d in first}.isdisjoint({d.path for d in second})
    assert Image.open(first[0].path).size == (40, 30)
    with zipfile.ZipFile(first[1].path) as archive:
        names = archive.namelist()
        assert "cat/overlay.png" in names and "cat/01_cat.png" in names
        mask = np.asarray(Image.open(io.BytesIO(archive.read("cat/01_cat.png"))))
        assert (mask > 0).sum() == 100
    coco = json.loads(first[2].path.read_text())
    assert [a["area"] for a in coco["annotations"]] == [100]


def test_no_objects_gives_only_the_overlay(tmp_path):
    downloads = write_result_downloads(
        tmp_path / "001.png", item(detections=False), Image.new("RGB", (40, 30))
    )
    assert [d.name for d in downloads] == ["cat-overlay.jpg"]


def test_export_all_covers_every_item(tmp_path):
    downloads = write_export_all(tmp_path, [item("a.png"), item("b.png", False)])
    assert [d.name for d in downloads] == [
        "export-1-masks-coco-yolo.zip",
        "export-1.coco.json",
    ]
    coco = json.loads(downloads[1].path.read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "b.png"]
    assert write_export_all(tmp_path, [item()])[0].name.startswith("export-2")
