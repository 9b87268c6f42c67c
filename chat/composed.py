"""A composed request in the chat, one step per model run (core.service.compose).

"detect everything": the caption's "generating" step (prompt and raw
text), a "names" step (what the caption names, the prompt it becomes), then
the detect/segment step. "describe each object": a "captions per object"
step listing each crop's caption. The answer is the grounded one, so the
turn the chat records is that detect/segment request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import chainlit as cl

from chat.services import ChatServices
from core.conversation import Turn
from core.engine.queue import Place
from core.security import code_block_safe
from core.service import Hooks, Job, Picture
from core.service.compose import caption_objects, names_job, no_names, plain
from core.types import AnalysisResult

# One model run shown as its steps: chat.analysis.generate_and_place.
Look = Callable[[Job], Awaitable[AnalysisResult]]


async def composed_steps(
    services: ChatServices,
    engine,
    job: Job,
    picture: Picture,
    look: Look,
    on_position: Callable[[Place], Awaitable[object]],
    last: Turn | None = None,
) -> AnalysisResult:
    """``job``'s steps on ``picture``, each shown as it runs. "describe each
    object" after an answer (``last``, the photo's last turn, asked the same)
    captions that answer's objects, replayed without generating again."""
    if _same_objects(job, last):
        async with cl.Step(name="last answer", type="tool") as step:
            step.input = code_block_safe(last.intent.prompt)
            result = await services.service.replay(last, picture.original_wh, engine)
            step.output = f"{len(result.detections)} object(s), not generated again"
    else:
        result = await look(plain(job))
    if job.intent.then:
        caption = result.answer or ""
        async with cl.Step(name="names", type="tool") as step:
            step.input = code_block_safe(caption)
            names = names_job(services.service, job, caption, picture)
            step.output = code_block_safe(names.intent.prompt if names else "(none)")
        if names is None:
            return no_names(result)
        result = replace(await look(names), caption=caption)
    if job.intent.per_object and result.detections:
        async with cl.Step(
            name="captions per object", type="llm", show_input="text", language="text"
        ) as step:
            count = len(result.detections)
            step.input = code_block_safe(f"caption en (on each of {count} crops)")
            hooks = Hooks(on_position=on_position)
            captions = await caption_objects(
                services.service, job, picture, result.detections, hooks, engine
            )
            listed = "\n".join(f"{n}. {c}" for n, c in enumerate(captions, 1))
            step.output = code_block_safe(listed)
        result = replace(result, object_captions=captions)
    return result


def _same_objects(job: Job, last: Turn | None) -> bool:
    """Whether ``job`` asks for the captions of ``last``'s objects."""
    intent = job.intent
    return (
        last is not None
        and intent.per_object is not None
        and intent.follows_previous
        and last.intent.prompt == intent.prompt
        and last.intent.region == intent.region
    )
