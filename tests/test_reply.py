from __future__ import annotations

import numpy as np
import pytest

from core.reply import reply_markdown
from core.types import AnalysisResult, Detection, Intent

SEGMENT = Intent(task="segment", prompt="segment cat ; dog", targets=("cat", "dog"))
CAPTION = Intent(task="caption", prompt="caption en")


def result(intent, detections=(), answer=None, truncated=False) -> AnalysisResult:
    return AnalysisResult(
        intent=intent,
        raw_text="",
        detections=tuple(detections),
        answer=answer,
        truncated=truncated,
        max_new_tokens=92,
        image_size_wh=(640, 480),
    )


def test_grounded_reply_names_prompt_image_and_lists_boxes():
    mask = np.zeros((480, 640), bool)
    mask[10:20, 10:30] = True
    text = reply_markdown(
        result(SEGMENT, [Detection("cat", (10, 10, 30, 20), mask)]), "pets.jpg"
    )
    assert text.startswith("**`segment cat ; dog`** on *pets.jpg* (640x480)")
    assert "| 🟥 1 | cat | 10 | 10 | 30 | 20 | 200 |" in text
    assert "cut at" not in text


@pytest.mark.parametrize(
    ("res", "expected", "absent"),
    [
        (result(SEGMENT), "No cat or dog found", "|"),  # nothing found: a hint
        (result(CAPTION, answer="a cat on a mat"), "a cat on a mat", "|"),  # text
        (result(CAPTION, answer=""), "empty answer", "|"),  # empty text answer
        (
            result(CAPTION, answer="a cat", truncated=True),
            "cut at 92 new tokens, so the answer may be incomplete",
            "objects may be missing",
        ),
        (
            result(SEGMENT, truncated=True),
            "so some objects may be missing",
            "incomplete",
        ),
    ],
)
def test_reply_cases(res, expected, absent):
    text = reply_markdown(res, "pets.jpg")
    assert expected in text
    assert absent not in text.split("\n", 1)[1]
