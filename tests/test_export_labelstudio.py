"""The labelstudio export, read back by the Label Studio SDK itself.

The SDK validates every prediction against the labeling config
(``LabelInterface.validate_prediction``) and its COCO converter turns the
tasks, accepted as annotations, back into pixel boxes and polygons, which must
give our boxes and masks back. The SDK pins opencv<4.13 (requirements.txt has
5.x), so it runs in .venv-ls (scripts/setup_labelstudio.sh, run here when
missing) through tests/support/labelstudio_check.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.export import ExportItem
from core.export.formats import export_bytes, get_format
from core.export.labelstudio import label_studio_config
from core.export.masks import polygons_to_mask
from core.types import Detection

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tests" / "support" / "labelstudio_check.py"
ODD_LABEL = 'say "hi" <b>&'  # quotes and markup in a label: the XML must hold


def block(size_wh, box) -> np.ndarray:
    mask = np.zeros((size_wh[1], size_wh[0]), bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = True
    return mask


def distance(size_wh) -> np.ndarray:
    """Each pixel's distance to (30, 20)."""
    ys, xs = np.mgrid[: size_wh[1], : size_wh[0]]
    return np.hypot(xs - 30, ys - 20)


def ring(size_wh) -> np.ndarray:
    return (distance(size_wh) < 14) & (distance(size_wh) > 6)


@pytest.fixture(scope="module")
def ls_python() -> Path:
    """.venv-ls's python, created (once, a minute) by the setup script."""
    subprocess.run([str(ROOT / "scripts" / "setup_labelstudio.sh")], check=True)
    return ROOT / ".venv-ls" / "bin" / "python"


def items() -> list[ExportItem]:
    cat = ExportItem(
        "cat.png",
        (40, 30),
        (
            Detection("cat", (10, 5, 20, 15), block((40, 30), (10, 5, 20, 15))),
            Detection("dog", (2, 3, 9, 27)),  # box only
        ),
    )
    two_parts = block((64, 48), (2, 2, 8, 8)) | block((64, 48), (50, 40, 60, 46))
    line = np.zeros((48, 64), bool)
    line[30, 5:25] = True  # a sliver: no polygon, its box
    shapes = ExportItem(
        "shapes.jpg",
        (64, 48),
        (
            Detection(ODD_LABEL, (16, 6, 45, 35), ring((64, 48))),
            Detection("cat", (2, 2, 60, 46), two_parts),
            Detection("line", (5, 30, 25, 31), line),
        ),
    )
    return [cat, shapes, ExportItem("empty.png", (10, 10))]


def read_back(python: Path, tasks: list, tmp_path: Path) -> dict:
    (tmp_path / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    (tmp_path / "config.xml").write_text(label_studio_config(items()), "utf-8")
    proc = subprocess.run(
        [str(python), str(CHECK), "tasks.json", "config.xml", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_label_studio_reads_our_boxes_and_polygons_back(ls_python, tmp_path) -> None:
    fmt = get_format("labelstudio")
    assert (fmt.media_type, fmt.file_name()) == (
        "application/json",
        "paligemma.labelstudio.json",
    )
    tasks = json.loads(export_bytes("labelstudio", items()))
    back = read_back(ls_python, tasks, tmp_path)
    assert back["errors"] == [[], [], []]
    coco = back["coco"]
    sizes = [(i["width"], i["height"]) for i in coco["images"]]
    assert sizes == [(40, 30), (64, 48), (None, None)]  # no region: no size known
    names = {c["id"]: c["name"] for c in coco["categories"]}
    got: dict[tuple[int, str], list[dict]] = {}
    for annotation in coco["annotations"]:
        key = (annotation["image_id"], names[annotation["category_id"]])
        got.setdefault(key, []).append(annotation)
    assert sorted(got) == sorted(
        [(0, "cat"), (0, "dog"), (1, ODD_LABEL), (1, "cat"), (1, "line")]
    )
    # Boxes: pixel edges, exact (percent kept to 6 decimals).
    for key, box in (((0, "dog"), (2, 3, 9, 27)), ((1, "line"), (5, 30, 25, 31))):
        (annotation,) = got[key]
        x1, y1, x2, y2 = box
        assert np.allclose(annotation["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=1e-3)
        assert annotation["segmentation"] == []
    # Polygons: through pixel centres; drawn back they give the mask (holes filled).
    expected = {
        (0, "cat"): block((40, 30), (10, 5, 20, 15)),
        (1, ODD_LABEL): distance((64, 48)) < 14,  # the ring, its hole filled
        (1, "cat"): items()[1].detections[1].mask,
    }
    for key, mask in expected.items():
        outlines = [
            np.array(a["segmentation"][0]).reshape(-1, 2) - 0.5 for a in got[key]
        ]
        size_wh = (mask.shape[1], mask.shape[0])
        assert np.array_equal(polygons_to_mask(outlines, size_wh), mask), key
    assert len(got[(1, "cat")]) == 2  # one region per part


def test_the_sdk_check_catches_a_broken_task(ls_python, tmp_path) -> None:
    """The read-back is no rubber stamp: a box off the image and an unknown
    label are refused by the same check."""
    tasks = json.loads(export_bytes("labelstudio", items()[:1]))
    regions = tasks[0]["predictions"][0]["result"]
    box = next(r for r in regions if r["type"] == "rectanglelabels")
    box["value"]["x"] = 150.0
    polygon = next(r for r in regions if r["type"] == "polygonlabels")
    polygon["value"]["polygonlabels"] = ["zebra"]
    (errors,) = read_back(ls_python, tasks, tmp_path)["errors"]
    assert any("x 150" in e and "out of bounds" in e for e in errors), errors
    assert any("'zebra' is not in the config" in e for e in errors), errors
