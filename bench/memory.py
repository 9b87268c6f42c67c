"""Peak memory of the image paths that used to amplify: one child process each.

Usage: ``python -m bench.memory [--code-root DIR] [--only NAME ...]``; prints
JSON. Each scenario runs in a fresh ``python`` child that imports the code
under ``--code-root`` (default: this checkout; point it at an export of an
older commit to get the "before" figures side by side), builds its inputs,
notes its peak resident memory (``VmHWM``), runs the work and reports the
rise of that peak (``extra_mb``: memory the work added) and its wall time.

Scenarios:
- ``tiff_40mp_float``: ``load_image`` on a deflate-compressed 40 MP float32
  TIFF (a few hundred KB on disk).
- ``masks_20_grid_40mp``: ``place_objects`` for 20 segmented objects tiling a
  40 MP image (a 5 x 4 grid of boxes), then a COCO export of them.
- ``masks_20_full_40mp``: the same with 20 boxes each covering the whole image.
- ``tiles_display_20``: "look closely" in the chat: ``analyze_tiled`` on the
  2016x1512 display copy of a 12 MP photo, 3x3 tiles + the whole photo, a
  stand-in model answering 20 segmented objects per look (200 masks merged).
- ``tiles_12mp_20``: the same on the 4032x3024 original (the API's tiles=3x3).
- ``upload_12mp_jpeg``: what the chat does with a 12 MP JPEG upload before the
  first turn (decode; with chat.photos: display copy and model input too).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZE_40MP = (7300, 5475)  # 39.97 MP: under MAX_IMAGE_PIXELS 40,000,000
SIZE_12MP = (4032, 3024)

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
scenario, data_path = sys.argv[2], sys.argv[3]
SIZE_12MP = (4032, 3024)

import numpy as np

def rss_mb():
    # VmHWM: this process's peak resident set. (ru_maxrss would start at the
    # parent's peak: Linux carries it over fork and exec.)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def grid_boxes(n_cols, n_rows):
    return [
        (c / n_cols, r / n_rows, (c + 1) / n_cols, (r + 1) / n_rows)
        for r in range(n_rows) for c in range(n_cols)
    ]

if scenario == "tiff_40mp_float" or scenario == "upload_12mp_jpeg":
    data = open(data_path, "rb").read()
    if scenario == "upload_12mp_jpeg":
        try:
            from chat.photos import prepare_photo as work_fn
            work = lambda: work_fn(data, max_pixels=40_000_000, max_bytes=None)
        except ImportError:  # before chat.photos: the chat decoded in full
            from core.images import load_image
            work = lambda: load_image(data, max_pixels=40_000_000)
    else:
        from core.images import load_image
        work = lambda: load_image(data, max_pixels=40_000_000)
elif scenario.startswith("tiles_"):
    from PIL import Image
    from core.intent import parse_intent
    from core.tiling import analyze_tiled
    from tests.support.fakes import disc_logits

    segs = "".join(f"<seg{v:03d}>" for v in range(16))
    answer = " ; ".join(
        "".join(f"<loc{v:04d}>" for v in (y, x, y + 150, x + 150))
        + f" {segs} cat"
        for y in range(0, 800, 200) for x in range(0, 1000, 200)
    )

    class Looks:
        def generate(self, image, prompt, **decoding):
            return answer

        def decode_masks(self, seg_indices):
            return disc_logits(len(seg_indices))

    size_wh = (2016, 1512) if scenario == "tiles_display_20" else SIZE_12MP
    photo = Image.new("RGB", size_wh, "gray")
    work = lambda: analyze_tiled(photo, parse_intent("segment cat"), Looks(), (3, 3))
else:
    from core.export import ExportItem, to_coco
    from core.pipeline import place_objects
    from core.types import ParsedObject
    from tests.support.fakes import disc_logits

    class Vae:
        def decode_masks(self, seg_indices):
            return disc_logits(len(seg_indices))

    if scenario == "masks_20_grid_40mp":
        boxes = grid_boxes(5, 4)
    else:
        boxes = [(0.0, 0.0, 1.0, 1.0)] * 20
    codes = tuple(range(16))
    objects = [ParsedObject(f"o{i}", b, codes) for i, b in enumerate(boxes)]
    size_wh = (7300, 5475)

    def work():
        detections, _ = place_objects(objects, size_wh, Vae())
        coco = to_coco([ExportItem("a.jpg", size_wh, tuple(detections))])
        return detections, coco

before = rss_mb()
start = time.perf_counter()
kept = work()
seconds = time.perf_counter() - start
peak = rss_mb()
print(json.dumps({
    "baseline_rss_mb": round(before, 1),
    "peak_rss_mb": round(peak, 1),
    "extra_mb": round(peak - before, 1),
    "seconds": round(seconds, 3),
}))
"""


def write_inputs(folder: Path) -> dict[str, Path]:
    """The TIFF and JPEG inputs (written once, read by every child)."""
    width, height = SIZE_40MP
    rows = np.repeat(np.linspace(-2.0, 5000.0, height // 40 + 1), 40)[:height]
    values = np.broadcast_to(rows[:, None], (height, width)).astype(np.float32)
    tiff = folder / "float-40mp.tif"
    Image.fromarray(values, mode="F").save(tiff, compression="tiff_adobe_deflate")
    del values
    width, height = SIZE_12MP
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    jpeg = folder / "photo-12mp.jpg"
    Image.fromarray(pixels).save(jpeg, quality=90)
    return {
        "tiff_40mp_float": tiff,
        "masks_20_grid_40mp": tiff,  # unused by the child
        "masks_20_full_40mp": tiff,
        "upload_12mp_jpeg": jpeg,
        "tiles_display_20": tiff,  # unused by the child
        "tiles_12mp_20": tiff,
    }


def run_child(code_root: Path, scenario: str, data_path: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, str(code_root), scenario, str(data_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=code_root,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code-root", type=Path, default=ROOT)
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_inputs(Path(tmp))
        names = args.only or list(inputs)
        results = {}
        for name in names:
            results[name] = run_child(args.code_root.resolve(), name, inputs[name])
            if name == "tiff_40mp_float":
                results[name]["file_kb"] = round(inputs[name].stat().st_size / 1024)
    print(
        json.dumps(
            {"bench": "memory", "code_root": str(args.code_root), "results": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
