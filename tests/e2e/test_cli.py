"""``python -m cli``: real subprocesses, plus its pure helpers.

The folder run answers from recorded PaliGemma text (MODEL_ID=replay:...), so
every export holds the two recorded cars with real masks and the checks know
how many detections to expect; one run on the tiny random PaliGemma 2 covers
the transformers plumbing (its answers are arbitrary: structure only).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from cli.main import find_images, write_outputs
from core.batch import batch_to_export_items
from core.export.masks import rle_to_mask
from core.geometry import box_to_pixels
from core.service.many import analyze_batch
from core.tokens import parse_objects
from tests.recorded import API_RECORDING, SHOE_DETECT, WHEELS_SEGMENT

REPO_ROOT = Path(__file__).resolve().parents[2]
# Large enough that the synthetic VAE's masks cover pixels in every box.
SIZES_WH = {"a.png": (160, 120), "b.png": (128, 96)}
CARS = parse_objects(API_RECORDING["segment car"])  # two segmented cars


def run_cli(
    args: list[str], tmp_path: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_ID", "VAE_PATH")}
    env.update(
        HF_HUB_OFFLINE="1",
        DATA_DIR=str(tmp_path / "data"),
        DEVICE="cpu",
        **(env_extra or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_png(path: Path, size_wh: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size_wh, (200, 60, 30)).save(path)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, synthetic_vae_path):
    """One CLI run over a folder: a.png, b.png, broken.png, notes.txt, sub/c.png."""
    tmp = tmp_path_factory.mktemp("cli")
    images = tmp / "images"
    for name, size_wh in SIZES_WH.items():
        write_png(images / name, size_wh)
    (images / "broken.png").write_text("not really a PNG")
    (images / "notes.txt").write_text("skipped: not an image extension")
    write_png(images / "sub" / "c.png", (20, 20))  # skipped: not --recursive
    recording = tmp / "recording.json"
    recording.write_text(json.dumps(API_RECORDING))
    out = tmp / "out"
    args = ["segment the cars", str(images), "--out", str(out)]
    args += ["--max-new-tokens", "48"]
    model_env = {"MODEL_ID": f"replay:{recording}", "VAE_PATH": str(synthetic_vae_path)}
    return run_cli(args, tmp, model_env), out


def test_cli_on_the_tiny_model(tmp_path, tiny_model_dir, synthetic_vae_path):
    """The transformers path end to end: loads, generates, writes results."""
    write_png(tmp_path / "images" / "a.png", (64, 48))
    out = tmp_path / "out"
    args = ["segment cat", str(tmp_path / "images"), "--out", str(out)]
    args += ["--format", "json", "--max-new-tokens", "24"]
    args += ["--model", str(tiny_model_dir), "--vae", str(synthetic_vae_path)]

    proc = run_cli(args, tmp_path)

    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads((out / "results.json").read_text())["images"]
    assert entry["ok"] and entry["prompt"] == "segment cat"
    assert len(entry["detections"]) == len(parse_objects(entry["raw_text"]))


def test_cli_exits_0_and_reports_the_broken_file(cli_run):
    proc, _ = cli_run
    assert proc.returncode == 0, proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert failed == [
        "failed: broken.png: That is not an image I can read: it looks like plain "
        "text. Please send a JPEG, PNG, WEBP, GIF, BMP or TIFF image."
    ]
    assert "2 of 3 images done, 1 failed" in proc.stderr


def test_cli_writes_every_format_and_overlays(cli_run):
    _, out = cli_run
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert written == [
        "a.overlay.png",
        "b.overlay.png",
        "paligemma-masks.zip",
        "paligemma-yolo.zip",
        "paligemma.coco.json",
        "paligemma.labelstudio.json",
        "results.json",
    ]
    for name, size_wh in SIZES_WH.items():
        stem = name.removesuffix(".png")
        assert Image.open(out / f"{stem}.overlay.png").size == size_wh


def test_cli_zip_holds_coco_yolo_and_overlays(cli_run):
    _, out = cli_run
    with zipfile.ZipFile(out / "paligemma-masks.zip") as archive:
        names = set(archive.namelist())
        coco = json.loads(archive.read("annotations.coco.json"))
        overlay = Image.open(io.BytesIO(archive.read("a/overlay.png")))
    expected = {"annotations.coco.json", "classes.txt", "labels/a.txt", "labels/b.txt"}
    expected |= {"a/overlay.png", "b/overlay.png"}
    expected |= {f"{stem}/{i:02d}_car.png" for stem in "ab" for i in (1, 2)}
    assert names == expected  # one PNG per masked car
    assert len(coco["annotations"]) == 4
    assert all(isinstance(a["segmentation"], dict) for a in coco["annotations"])
    assert overlay.size == SIZES_WH["a.png"]


def test_cli_coco_loads_with_pycocotools(cli_run):
    _, out = cli_run
    coco = COCO(str(out / "paligemma.coco.json"))
    images = coco.loadImgs(coco.getImgIds())
    assert [(i["file_name"], i["width"], i["height"]) for i in images] == [
        (name, *size_wh) for name, size_wh in SIZES_WH.items()
    ]
    for image in images:
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert len(annotations) == len(CARS)
        for annotation in annotations:
            mask = coco.annToMask(annotation)
            assert mask.shape == (image["height"], image["width"])
            assert int(mask.sum()) == annotation["area"] > 0


def test_cli_results_json_has_one_entry_per_image_in_order(cli_run):
    _, out = cli_run
    images = json.loads((out / "results.json").read_text())["images"]
    assert [i["file_name"] for i in images] == ["a.png", "b.png", "broken.png"]
    assert [i["ok"] for i in images] == [True, True, False]
    for entry in images[:2]:
        assert entry["prompt"] == "segment car"
        assert entry["task"] == "segment"
        assert entry["raw_text"] == API_RECORDING["segment car"]
        assert entry["answer"] is None  # grounded task: detections, no answer
        assert entry["truncated"] is False
        assert entry["error"] is None
        stem = entry["file_name"].removesuffix(".png")
        assert entry["overlay_file"] == f"{stem}.overlay.png"
        size_wh = (entry["width"], entry["height"])
        boxes = [list(box_to_pixels(car.box, size_wh)) for car in CARS]
        assert [d["box_px"] for d in entry["detections"]] == boxes
        for detection in entry["detections"]:
            assert set(detection) == {"label", "box_px", "area", "mask_rle"}
            assert detection["label"] == "car"
            mask = rle_to_mask(detection["mask_rle"])
            assert mask.shape == (entry["height"], entry["width"])
            assert int(mask.sum()) == detection["area"] > 0
    broken = images[2]
    assert broken["error_code"] == "bad_image"
    assert broken["detections"] == [] and broken["overlay_file"] is None


def test_cli_exits_1_when_every_image_fails(tmp_path, synthetic_vae_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "x.jpg").write_bytes(b"%PDF-1.4 not a photo")
    recording = tmp_path / "recording.json"
    recording.write_text(json.dumps(API_RECORDING))
    out = tmp_path / "out"
    args = ["detect dog", str(images), "--out", str(out), "--format", "json"]
    args += ["--model", f"replay:{recording}", "--vae", str(synthetic_vae_path)]

    proc = run_cli(args, tmp_path)

    assert proc.returncode == 1, proc.stderr
    assert "failed: x.jpg: That is not an image I can read: it looks like a PDF" in (
        proc.stderr
    )
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    (entry,) = json.loads((out / "results.json").read_text())["images"]
    assert (entry["file_name"], entry["ok"]) == ("x.jpg", False)


def test_cli_exits_1_with_the_fix_when_the_model_cannot_load(tmp_path):
    images = tmp_path / "images"
    write_png(images / "a.png", (8, 8))
    missing = tmp_path / "no-such-model"
    args = ["detect dog", str(images), "--out", str(tmp_path / "out")]

    proc = run_cli([*args, "--model", str(missing)], tmp_path)

    assert proc.returncode == 1
    assert f"error: MODEL_ID points to {missing}, which is not a directory" in (
        proc.stderr
    )


@pytest.mark.parametrize(
    ("prompt", "rest", "message"),
    [
        ("detect dog", "{images}", "the following arguments are required: --out"),
        ("detect dog", "{images}/nope.png --out {out}", "no such file or folder"),
        ("hello", "{images} --out {out}", "does not ask the model to run"),  # no task
        ("detect dog", "{empty} --out {out}", "no image files"),  # empty folder
        ("detect dog", "{images} --out {out} --format xml", "invalid choice"),
        ("detect dog", "{images} --out {out} --max-new-tokens 0", "in 1..2048"),
    ],
)
def test_cli_usage_errors_exit_2_before_loading_anything(
    tmp_path, prompt, rest, message
):
    images, empty, out = tmp_path / "images", tmp_path / "empty", tmp_path / "o"
    write_png(images / "a.png", (8, 8))
    empty.mkdir()
    rest = rest.format(images=images, empty=empty, out=out)

    proc = run_cli([prompt, *rest.split()], tmp_path)

    assert proc.returncode == 2
    assert message in proc.stderr
    assert "usage: python -m cli" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("recursive", "expected"),
    [
        (False, ["A.JPG", "b.png", "d.tiff"]),  # top level only, sorted
        (True, ["A.JPG", "b.png", "d.tiff", "sub/c.webp"]),  # walks subfolders
    ],
)
def test_find_images_by_extension(tmp_path, recursive, expected):
    for name in ("b.png", "A.JPG", "d.tiff", "sub/c.webp", "notes.txt", "x.svg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_images([str(tmp_path)], recursive)
    assert [name for name, _ in found] == expected
    assert all(path.is_file() for _, path in found)


def test_find_images_takes_explicit_files_whatever_their_extension(tmp_path):
    (tmp_path / "scan.dat").write_bytes(b"")
    (tmp_path / "z.png").write_bytes(b"")
    found = find_images([str(tmp_path / "z.png"), str(tmp_path / "scan.dat")], False)
    assert [name for name, _ in found] == ["z.png", "scan.dat"]  # given order


def test_write_outputs_with_recorded_masks(fake_model, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480)).save(buffer, format="PNG")
    fake_model.enqueue(WHEELS_SEGMENT).enqueue(SHOE_DETECT)
    png = buffer.getvalue()
    sources = [("cars.png", png), ("bad.png", b""), ("shoe.png", png)]
    items = analyze_batch(sources, "segment wheel", fake_model, max_pixels=10**7)
    exports = batch_to_export_items(items, overlays=True)

    written = write_outputs(tmp_path, "all", exports, items)

    assert {p.name for p in written} >= {"cars.overlay.png", "shoe.overlay.png"}
    with zipfile.ZipFile(tmp_path / "paligemma-yolo.zip") as archive:
        assert archive.read("classes.txt") == b"right wheel\nshoe\n"
        wheel_lines = archive.read("labels/cars.txt").decode().splitlines()
        assert archive.read("labels/shoe.txt").startswith(b"1 ")
    assert [line.split()[0] for line in wheel_lines] == ["0", "0"]
    coco = COCO(str(tmp_path / "paligemma.coco.json"))
    areas = [a["area"] for a in coco.loadAnns(coco.getAnnIds(imgIds=[1]))]
    results = json.loads((tmp_path / "results.json").read_text())["images"]
    assert [d["area"] for d in results[0]["detections"]] == areas
    mask = rle_to_mask(results[0]["detections"][0]["mask_rle"])
    assert np.array_equal(mask, items[0].result.detections[0].mask)
    assert [r["overlay_file"] for r in results] == [
        "cars.overlay.png",
        None,
        "shoe.overlay.png",
    ]
    with zipfile.ZipFile(tmp_path / "paligemma-masks.zip") as archive:
        assert {"cars/01_right_wheel.png", "cars/02_right_wheel.png"} <= set(
            archive.namelist()
        )


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("zip", {"paligemma-masks.zip"}),  # zip only
        ("coco", {"paligemma.coco.json"}),  # coco only
        ("yolo", {"paligemma-yolo.zip"}),  # yolo only
        ("labelstudio", {"paligemma.labelstudio.json"}),  # Label Studio only
        ("json", {"results.json"}),  # json only
    ],
)
def test_write_outputs_one_format(fake_model, tmp_path, fmt, expected):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    fake_model.enqueue(SHOE_DETECT)
    items = analyze_batch(
        [("cars.png", buffer.getvalue())], "detect shoe", fake_model, max_pixels=10**6
    )
    exports = batch_to_export_items(items, overlays=False)

    written = write_outputs(tmp_path, fmt, exports, items)

    assert {p.relative_to(tmp_path).as_posix() for p in written} == expected
