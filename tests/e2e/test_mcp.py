"""The MCP door answers the ``mcp`` package's own client: over streamable HTTP
at /mcp on the real server (chainlit run, API_KEY set) and over stdio
(``python -m api.mcp_door``), on recorded PaliGemma 2 answers (replay model),
so every box is known to the pixel."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from mcp.types import ImageContent, TextContent
from pycocotools import mask as mask_utils

from core.geometry import box_to_pixels
from core.tokens import parse_objects
from tests.recorded import API_RECORDING, CAPTION_EN
from tests.support import api_inputs as inputs
from tests.support.mcp_client import (
    ROOT,
    b64,
    http_call,
    http_tools,
    overlay,
    stdio_calls,
)

pytestmark = pytest.mark.e2e

KEY = "mcp-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOOLS = {"detect", "segment", "caption", "ocr", "ask"}


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(
        recording=API_RECORDING, name="mcp", API_KEY=KEY, RATE_LIMIT="100000"
    )


def expected_boxes(prompt: str, size_wh: tuple[int, int]) -> list[list[int]]:
    """Boxes in original pixels of the recorded answer to ``prompt``."""
    objects = parse_objects(API_RECORDING[prompt])
    return [list(box_to_pixels(o.box, size_wh)) for o in objects]


def test_the_five_tools_are_listed_with_an_image_argument(server) -> None:
    tools = {tool.name: tool for tool in http_tools(server.url, AUTH)}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert "image" in tool.inputSchema["required"], tool.name
        assert tool.description
    assert "targets" in tools["detect"].inputSchema["required"]
    assert "question" in tools["ask"].inputSchema["required"]


def test_detect_answers_exact_boxes_and_a_png_overlay(server) -> None:
    size = (128, 96)
    image = b64(inputs.jpeg(size))
    result = http_call(
        server.url, "detect", {"image": image, "targets": ["dog", "bike"]}, AUTH
    )
    assert not result.isError, result
    body = result.structuredContent
    assert body["task"] == "detect" and body["prompt"] == "detect dog ; bike"
    assert body["image_size_wh"] == list(size)
    assert [d["label"] for d in body["detections"]] == ["dog", "bike"]
    boxes = [d["box_px"] for d in body["detections"]]
    assert boxes == expected_boxes("detect dog ; bike", size)
    assert all(d["mask_rle"] is None for d in body["detections"])
    (text,) = [c for c in result.content if isinstance(c, TextContent)]
    assert json.loads(text.text) == body  # the same JSON for text-only clients
    assert overlay(result).size == size


def test_segment_answers_masks_as_rle_inside_their_boxes(server) -> None:
    size = (160, 120)
    data_url = "data:image/png;base64," + b64(inputs.png(size))
    result = http_call(
        server.url, "segment", {"image": data_url, "targets": ["car"]}, AUTH
    )
    assert not result.isError, result
    detections = result.structuredContent["detections"]
    assert [d["label"] for d in detections] == ["car", "car"]
    assert [d["box_px"] for d in detections] == expected_boxes("segment car", size)
    for item in detections:
        rle = item["mask_rle"]
        assert rle["size"] == [size[1], size[0]]
        mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"]})
        assert int(mask.sum()) == item["area"] > 0
        x1, y1, x2, y2 = item["box_px"]
        ys, xs = np.nonzero(mask)
        assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2
    assert overlay(result).size == size


def test_caption_answers_text_without_an_image(server) -> None:
    image = b64(inputs.png((40, 30)))
    result = http_call(server.url, "caption", {"image": image}, AUTH)
    assert not result.isError, result
    assert result.structuredContent["answer"] == CAPTION_EN
    assert result.structuredContent["detections"] == []
    assert not [c for c in result.content if isinstance(c, ImageContent)]


def test_a_bad_argument_is_a_tool_error_that_says_the_fix(server) -> None:
    image = b64(inputs.png((40, 30)))
    result = http_call(server.url, "caption", {"image": image, "language": "xx"}, AUTH)
    assert result.isError and "language" in result.content[0].text


def test_stdio_reads_a_local_path_and_answers_exact_boxes(
    tmp_path, synthetic_vae_path
) -> None:
    size = (200, 150)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(inputs.jpeg(size))
    recording = tmp_path / "recording.json"
    recording.write_text(json.dumps(API_RECORDING), encoding="utf-8")
    env = {  # as docs/api.md configures Claude Desktop: PYTHONPATH, any folder
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MODEL_ID": f"replay:{recording}",
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
    }
    by_path, by_b64 = stdio_calls(
        env,
        [
            ("detect", {"image": str(photo), "targets": ["dog", "bike"]}),
            ("segment", {"image": b64(inputs.png((64, 48))), "targets": "car"}),
        ],
        cwd=tmp_path,
    )
    assert not by_path.isError, by_path
    boxes = [d["box_px"] for d in by_path.structuredContent["detections"]]
    assert boxes == expected_boxes("detect dog ; bike", size)
    assert overlay(by_path).size == size
    assert not by_b64.isError, by_b64
    boxes = [d["box_px"] for d in by_b64.structuredContent["detections"]]
    assert boxes == expected_boxes("segment car", (64, 48))
