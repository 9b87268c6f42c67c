"""core.export.downloads: the chat's overlay and export files, one per format."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from PIL import Image

from core.export import ExportItem
from core.export.downloads import write_export_all, write_overlay, write_result_export
from core.export.formats import FORMATS
from core.types import Detection


def item(name="cat.png", detections=True) -> ExportItem:
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:20] = True
    dets = (Detection("cat", (10, 5, 20, 15), mask),) if detections else ()
    return ExportItem(name, (40, 30), dets)


def test_overlays_are_numbered_and_shown_inline(tmp_path) -> None:
    stored = tmp_path / "001.png"
    overlay = Image.new("RGB", (40, 30), "red")
    first = write_overlay(stored, "cat.png", overlay)
    second = write_overlay(stored, "cat.png", overlay)
    assert (first.name, first.inline) == ("cat-overlay.jpg", True)
    assert first.path != second.path
    assert Image.open(first.path).size == (40, 30)


def test_a_result_export_is_one_file_of_its_format(tmp_path) -> None:
    stored = tmp_path / "001.png"
    zipped = write_result_export(stored, item(), "zip")
    again = write_result_export(stored, item(), "zip")
    assert (zipped.name, zipped.inline) == ("cat-masks.zip", False)
    assert zipped.path != again.path and zipped.path.parent == tmp_path
    with zipfile.ZipFile(zipped.path) as archive:
        names = archive.namelist()
        assert "cat/01_cat.png" in names and "errors.json" not in names
        mask = np.asarray(Image.open(io.BytesIO(archive.read("cat/01_cat.png"))))
        assert (mask > 0).sum() == 100
    coco = write_result_export(stored, item(), "coco")
    document = json.loads(coco.path.read_text())
    assert coco.name == "cat.coco.json" and "errors" not in document
    assert [a["area"] for a in document["annotations"]] == [100]


def test_export_all_writes_every_format_over_every_item(tmp_path) -> None:
    downloads = write_export_all(tmp_path, [item("a.png"), item("b.png", False)])
    assert [d.name for d in downloads] == [f.file_name("export-1") for f in FORMATS]
    coco = json.loads(downloads[0].path.read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "b.png"]
    tasks = json.loads(downloads[-1].path.read_text())
    assert [t["data"]["image"] for t in tasks] == ["a.png", "b.png"]
    assert write_export_all(tmp_path, [item()])[0].name.startswith("export-2")
