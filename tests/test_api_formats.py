"""/v1/analyze ``format`` (json, coco, yolo, zip) and many images per request,
in process with recorded PaliGemma outputs (FakeModel) decoded by the real
MaskDecoder on the synthetic VAE. The reference masks come from running
core.pipeline.analyze on the same image and output; every exported mask must
equal them bit for bit. The real server is in test_api.py."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from core.export.masks import polygons_to_mask, rle_to_mask
from core.mask_decoder import MaskDecoder
from core.pipeline import analyze
from core.types import Detection
from tests.recorded import WHEELS_SEGMENT
from tests.support.fakes import FakeModel
from tests.test_api_app import FakeManager, _client, _png

PROMPT = "segment wheel"
GOOD = {"car.png": (640, 480), "small car.png": (320, 240)}
BROKEN = ("notes.png", b"just text, not an image")


@pytest.fixture(scope="module")
def decoder(synthetic_vae_path) -> MaskDecoder:
    return MaskDecoder.from_npz(synthetic_vae_path)


def _reference(decoder: MaskDecoder | None) -> dict[str, tuple[Detection, ...]]:
    """The detections pipeline.analyze gives for each good image."""
    out = {}
    for name, size_wh in GOOD.items():
        model = FakeModel(mask_decoder=decoder).enqueue(WHEELS_SEGMENT)
        image = Image.open(io.BytesIO(_png(size_wh))).convert("RGB")
        out[name] = analyze(image, PROMPT, model).detections
        assert all(d.mask is not None and d.mask.any() for d in out[name])
    return out


@pytest.fixture(scope="module")
def expected(decoder) -> dict[str, tuple[Detection, ...]]:
    """Speckled masks (random synthetic VAE: hundreds of parts, holes): the
    hard case for exact encodings."""
    return _reference(decoder)


@pytest.fixture(scope="module")
def expected_discs() -> dict[str, tuple[Detection, ...]]:
    """One disc per box (FakeModel's own decoder): clean outlines, so polygon
    exports can be compared by overlap."""
    return _reference(None)


def _files(names=("car.png", BROKEN[0], "small car.png")) -> list[tuple]:
    return [
        ("images", (n, BROKEN[1] if n == BROKEN[0] else _png(GOOD[n]), "image/png"))
        for n in names
    ]


async def _post(decoder: MaskDecoder | None, files=None, model=None, **fields):
    if model is None:
        model = FakeModel(mask_decoder=decoder)
        for _ in range(len(GOOD)):
            model.enqueue(WHEELS_SEGMENT)
    async with _client(FakeManager(model)) as client:
        return await client.post(
            "/v1/analyze",
            data={"prompt": PROMPT, **fields},
            files=files if files is not None else _files(),
        )


def _members(response) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _png_mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data))) > 0


def _check_errors(errors: list[dict]) -> None:
    (failure,) = errors
    assert failure["index"] == 1 and failure["filename"] == BROKEN[0]
    assert failure["error"]["code"] == "bad_image"
    assert "plain text" in failure["error"]["message"]


async def test_json_masks_equal_the_pipeline_masks(decoder, expected) -> None:
    response = await _post(decoder)
    assert response.status_code == 200, response.text
    assert response.headers["x-failed-items"] == "1"
    assert "content-disposition" not in response.headers
    good, bad, small = response.json()["results"]
    assert bad["filename"] == BROKEN[0] and bad["error"]["code"] == "bad_image"
    for item in (good, small):
        detections = expected[item["filename"]]
        assert [d["box_px"] for d in item["detections"]] == [
            list(d.box_px) for d in detections
        ]
        for got, want in zip(item["detections"], detections, strict=True):
            assert np.array_equal(rle_to_mask(got["mask_rle"]), want.mask)


async def test_coco_loads_and_masks_decode_bit_for_bit(
    decoder, expected, tmp_path
) -> None:
    response = await _post(decoder, format="coco")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == (
        'attachment; filename="paligemma.coco.json"'
    )
    assert response.headers["x-failed-items"] == "1"
    document = response.json()
    _check_errors(document["errors"])
    path = tmp_path / "coco.json"
    path.write_bytes(response.content)
    coco = COCO(str(path))
    images = coco.loadImgs(coco.getImgIds())
    assert [(i["file_name"], i["width"], i["height"]) for i in images] == [
        (name, *size) for name, size in GOOD.items()
    ]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["right wheel"]
    for image in images:
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        detections = expected[image["file_name"]]
        assert len(annotations) == len(detections) == 2
        for annotation, detection in zip(annotations, detections, strict=True):
            assert annotation["iscrowd"] == 0
            assert annotation["area"] == detection.mask.sum()
            assert np.array_equal(coco.annToMask(annotation) > 0, detection.mask)


async def test_coco_polygons_outline_the_masks(expected_discs, tmp_path) -> None:
    response = await _post(None, format="coco", polygons="true")
    assert response.status_code == 200, response.text
    path = tmp_path / "coco.json"
    path.write_bytes(response.content)
    coco = COCO(str(path))
    for image in coco.loadImgs(coco.getImgIds()):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        for annotation, detection in zip(
            annotations, expected_discs[image["file_name"]], strict=True
        ):
            polygons = annotation["segmentation"]
            assert isinstance(polygons, list) and polygons
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
            drawn = coco.annToMask(annotation) > 0
            iou = (drawn & detection.mask).sum() / (drawn | detection.mask).sum()
            assert iou > 0.9  # lossy at the boundary (pixel-centre outline)


async def test_zip_holds_masks_coco_labels_overlays_and_errors(
    decoder, expected
) -> None:
    response = await _post(decoder, format="zip", include="overlay")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        'attachment; filename="paligemma-masks.zip"'
    )
    assert response.headers["x-failed-items"] == "1"
    members = _members(response)
    stems = {"car.png": "car", "small car.png": "small_car"}
    assert set(members) == {
        "annotations.coco.json",
        "classes.txt",
        "errors.json",
        "labels/car.txt",
        "labels/small_car.txt",
        "car/01_right_wheel.png",
        "car/02_right_wheel.png",
        "car/overlay.png",
        "small_car/01_right_wheel.png",
        "small_car/02_right_wheel.png",
        "small_car/overlay.png",
    }, sorted(members)
    for name, stem in stems.items():
        for index, detection in enumerate(expected[name], start=1):
            got = _png_mask(members[f"{stem}/{index:02d}_right_wheel.png"])
            assert np.array_equal(got, detection.mask)
        overlay = Image.open(io.BytesIO(members[f"{stem}/overlay.png"]))
        assert overlay.size == GOOD[name]
    _check_errors(json.loads(members["errors.json"]))
    coco = json.loads(members["annotations.coco.json"])
    assert [i["file_name"] for i in coco["images"]] == list(GOOD)
    assert members["classes.txt"] == b"right wheel\n"


async def test_yolo_zip_labels_trace_the_masks(expected_discs) -> None:
    response = await _post(None, format="yolo")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        'attachment; filename="paligemma-yolo.zip"'
    )
    members = _members(response)
    assert set(members) == {
        "classes.txt",
        "errors.json",
        "labels/car.txt",
        "labels/small_car.txt",
    }
    assert members["classes.txt"] == b"right wheel\n"
    _check_errors(json.loads(members["errors.json"]))
    for name, stem in (("car.png", "car"), ("small car.png", "small_car")):
        width, height = GOOD[name]
        lines = members[f"labels/{stem}.txt"].decode().splitlines()
        assert lines and all(line.startswith("0 ") for line in lines)
        polygons = []
        for line in lines:
            values = np.array([float(v) for v in line.split()[1:]])
            assert ((values >= 0) & (values <= 1)).all()
            polygons.append(values.reshape(-1, 2) * (width, height))
        drawn = polygons_to_mask(polygons, (width, height))
        union = np.logical_or.reduce([d.mask for d in expected_discs[name]])
        assert (drawn | union).sum() > 0
        assert (drawn & union).sum() / (drawn | union).sum() > 0.95


async def test_labelstudio_tasks_outline_the_masks(expected_discs) -> None:
    """format=labelstudio: one task per good image; the failed one is counted in
    X-Failed-Items (a task list has no room for it). The Label Studio SDK reads
    this format back in test_export_labelstudio.py."""
    response = await _post(None, format="labelstudio")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == (
        'attachment; filename="paligemma.labelstudio.json"'
    )
    assert response.headers["x-failed-items"] == "1"
    tasks = response.json()
    assert [t["data"]["image"] for t in tasks] == list(GOOD)
    for task in tasks:
        width, height = GOOD[task["data"]["image"]]
        (prediction,) = task["predictions"]
        outlines = []
        for region in prediction["result"]:
            assert region["type"] == "polygonlabels"
            assert region["value"]["polygonlabels"] == ["right wheel"]
            assert (region["original_width"], region["original_height"]) == (
                width,
                height,
            )
            points = np.array(region["value"]["points"]) / 100 * (width, height)
            outlines.append(points - 0.5)  # through pixel centres
        drawn = polygons_to_mask(outlines, (width, height))
        union = np.logical_or.reduce(
            [d.mask for d in expected_discs[task["data"]["image"]]]
        )
        assert (drawn & union).sum() / (drawn | union).sum() > 0.95


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"format": "xml"},
            "format must be one of json, coco, yolo, zip, labelstudio",
        ),  # case: xml
        ({"format": "png"}, "got 'png'"),  # case: the bad value is named
        ({"polygons": "true"}, "applies to format coco or zip"),  # case: json
        ({"format": "yolo", "polygons": "1"}, "format='yolo'"),  # case: yolo
        ({"format": "coco", "polygons": "maybe"}, "true or false"),  # case: value
    ],
)
async def test_bad_format_options_are_400_before_the_model_runs(
    decoder, fields, message
) -> None:
    model = FakeModel(mask_decoder=decoder)
    response = await _post(decoder, model=model, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request" and message in error["message"]
    assert model.calls == []


@pytest.mark.parametrize(
    ("fmt", "polygons", "content_type", "download"),
    [
        (" ZIP ", "false", "application/zip", "paligemma-masks.zip"),  # case: spaces
        ("Coco", "no", "application/json", "paligemma.coco.json"),  # case: explicit no
        ("YOLO", "", "application/zip", "paligemma-yolo.zip"),  # case: upper case
        ("json", "0", "application/json", None),  # case: json, polygons off
    ],
)
async def test_format_spellings_accepted(
    decoder, fmt, polygons, content_type, download
) -> None:
    response = await _post(decoder, format=fmt, polygons=polygons)
    assert response.status_code == 200, response.text
    assert response.headers["x-failed-items"] == "1"
    assert response.headers["content-type"] == content_type
    disposition = response.headers.get("content-disposition")
    assert disposition == (download and f'attachment; filename="{download}"')
    if fmt == "json":
        assert "results" in response.json()  # not a COCO file
    elif "coco" in fmt.lower():
        assert {"images", "annotations", "categories"} <= set(response.json())


@pytest.mark.parametrize("fmt", ["json", "coco", "yolo", "zip"])
async def test_every_image_failing_is_a_json_error_in_any_format(decoder, fmt) -> None:
    files = [("images", ("a.png", b"x")), ("images", ("b.svg", b"<svg></svg>"))]
    response = await _post(decoder, files=files, format=fmt)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-failed-items"] == "2"
    assert "content-disposition" not in response.headers
    body = response.json()
    assert body["error"]["code"] == "bad_image"
    assert [r["filename"] for r in body["results"]] == ["a.png", "b.svg"]


@pytest.mark.parametrize(
    ("count", "status"),
    [
        (3, 200),  # case: at the limit
        (4, 400),  # case: one over
    ],
)
async def test_max_images_per_request_setting(count, status) -> None:
    model = FakeModel()
    for _ in range(count):
        model.enqueue("a cow")
    files = [
        ("images", (f"{i}.png", _png((16, 16)), "image/png")) for i in range(count)
    ]
    async with _client(FakeManager(model), max_images_per_request=3) as client:
        response = await client.post(
            "/v1/analyze", data={"prompt": "caption en"}, files=files
        )
    assert response.status_code == status, response.text
    if status == 200:
        assert [r["answer"] for r in response.json()["results"]] == ["a cow"] * 3
    else:
        message = response.json()["error"]["message"]
        assert "at most 3 images" in message and "MAX_IMAGES_PER_REQUEST" in message
        assert model.calls == []


async def test_an_unexpected_model_error_fails_only_its_image(decoder) -> None:
    class FlakyModel(FakeModel):
        def generate(self, image, prompt, **decoding):
            if not self.calls:
                self.calls.append({"prompt": prompt})
                raise RuntimeError("CUDA error: device-side assert")
            return super().generate(image, prompt, **decoding)

    model = FlakyModel(mask_decoder=decoder).enqueue(WHEELS_SEGMENT)
    files = _files(("car.png", "small car.png"))
    response = await _post(decoder, files=files, model=model, format="yolo")
    assert response.status_code == 200, response.text
    assert response.headers["x-failed-items"] == "1"
    members = _members(response)
    (failure,) = json.loads(members["errors.json"])
    assert failure["filename"] == "car.png" and failure["index"] == 0
    assert failure["error"]["code"] == "internal_error"
    assert "RuntimeError" in failure["error"]["message"]
    assert "CUDA" not in failure["error"]["message"]  # no internals leak
    assert set(members) == {"classes.txt", "errors.json", "labels/small_car.txt"}


async def test_upload_names_lose_their_directories(decoder) -> None:
    files = [("images", ("../../etc/car.png", _png((64, 48)), "image/png"))]
    model = FakeModel(mask_decoder=decoder).enqueue(WHEELS_SEGMENT)
    response = await _post(decoder, files=files, model=model, format="coco")
    assert response.status_code == 200, response.text
    assert [i["file_name"] for i in response.json()["images"]] == ["car.png"]
    assert response.headers["x-failed-items"] == "0"
