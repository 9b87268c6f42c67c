"""Attack: one message that makes the model run many times for one charge.

"describe each object" is a caption, a detect and then one caption per
object found (up to MAX_DETECTIONS): each model run must count against
RATE_LIMIT before it runs, so one cheap message cannot buy a hundred runs.
"""

from __future__ import annotations

import pytest
from PIL import Image

from core.errors import RateLimitedError
from core.intent import parse_intent
from core.service import Picture
from tests.recorded import CAPTION_EN
from tests.test_compose import CAT_DOG, _services
from tests.test_service import ReadyModel


@pytest.mark.parametrize(
    ("limit", "prompts"),
    [
        # caption (1) + detect (1) + a caption per object (2) is 4 hits
        (3, ["caption en", "detect cat ; dog ; floor"]),  # case: captions refused
        (1, ["caption en"]),  # case: the detect of the names refused
    ],
)
async def test_each_model_run_is_charged_before_it_runs(limit, prompts) -> None:
    model = ReadyModel(CAPTION_EN, CAT_DOG, "a", "b")
    services = _services(model, limit=limit)
    job = services.prepare(
        parse_intent("describe each object"), services.options(), "ip:1"
    )
    with pytest.raises(RateLimitedError):
        await services.run(job, Picture(Image.new("RGB", (640, 480))))
    assert [c["prompt"] for c in model.calls] == prompts


async def test_four_runs_fit_a_limit_of_four() -> None:
    model = ReadyModel(CAPTION_EN, CAT_DOG, "a", "b")
    services = _services(model, limit=4)
    job = services.prepare(
        parse_intent("describe each object"), services.options(), "ip:1"
    )
    result = await services.run(job, Picture(Image.new("RGB", (640, 480))))
    assert result.object_captions == ("a", "b") and len(model.calls) == 4
