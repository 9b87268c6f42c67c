"""Redraws of the last result without the model: objects by number, layers.

"only 1 and 3" / "remove 2" / "show all" hide numbered objects of the last
result (a new turn with the same answer, so "undo" brings them back);
"hide the boxes" / "show labels" / "no masks" change the drawing options
(the settings panel follows). Both replay the kept answer: no generation.
"""

from __future__ import annotations

from chat.analysis import replay_turn, send_result
from chat.charge import charge
from chat.options import ChatOptions, current_options, set_options
from chat.services import ChatServices
from chat.session import save_state, send_chat_settings
from core.conversation import Conversation, ImageRecord, Turn
from core.errors import UserInputError
from core.types import GROUNDED_TASKS, Intent, ViewChange

_LAYER_OPTION = {"boxes": "show_boxes", "labels": "show_labels"}


async def redraw(
    services: ChatServices, conversation: Conversation, intent: Intent
) -> None:
    """Apply ``intent.view`` to the last grounded result and show it again.

    Raises UserInputError (shown by the caller) when there is nothing to
    redraw or a number is not in the last result.
    """
    change = intent.view or ViewChange()
    record, turn = _last_result(conversation, intent.image_ref)
    count = len(turn.summary.labels)
    hidden = _hidden_after(change, turn.hidden, count)
    options = current_options()
    if change.layers:
        options = _with_layers(options, change.layers)
        set_options(options)
        await send_chat_settings(options)
    if hidden != turn.hidden:
        turn = conversation.record(record.id, turn.intent, turn.summary, hidden)
    # the masks are decoded again: one hit, like undo (RateLimitedError past it)
    charge(services, 1)
    result = await replay_turn(services, turn, record)
    await save_state(services.persist)  # the new turn, before it is shown
    await send_result(services, record, result, options, hidden=turn.hidden)


def _with_layers(
    options: ChatOptions, layers: tuple[tuple[str, bool], ...]
) -> ChatOptions:
    """``options`` with boxes/labels switched; masks on = opacity back to default."""
    values = options.to_dict()
    for layer, on in layers:
        if layer == "masks":
            default = ChatOptions().opacity
            values["opacity"] = (options.opacity or default) if on else 0.0
        else:
            values[_LAYER_OPTION[layer]] = on
    return ChatOptions.from_values(values, options)


def _last_result(
    conversation: Conversation, image_ref: str | None
) -> tuple[ImageRecord, Turn]:
    if image_ref:
        record = conversation.resolve(image_ref)
        if isinstance(record, list):
            raise UserInputError("Pick one image, e.g. “only 1 and 3 on image 2”.")
        turn = conversation.last_turn(record.id)
    else:
        turn = conversation.last_turn()
        record = next(
            (r for r in conversation.images if turn and r.id == turn.image_id), None
        )
    if turn is None or record is None or turn.intent.task not in GROUNDED_TASKS:
        raise UserInputError(
            "There are no numbered objects to show or hide yet: ask me to detect "
            "or segment something first, e.g. *segment the cat*."
        )
    return record, turn


def _hidden_after(
    change: ViewChange, hidden: tuple[int, ...], count: int
) -> tuple[int, ...]:
    """The hidden object numbers after ``change``; refuses unknown numbers."""
    named = (*change.keep, *change.drop)
    if unknown := sorted(n for n in named if not 1 <= n <= count):
        numbers = ", ".join(str(n) for n in unknown)
        raise UserInputError(
            f"There is no object {numbers}: the last result has {count} (1 to {count})."
            if count
            else "The last result found no objects."
        )
    if change.show_all:
        return ()
    if change.keep:
        after = set(range(1, count + 1)) - set(change.keep)
    else:
        after = set(hidden) | set(change.drop)
    if after and len(after) >= count:
        raise UserInputError(
            "That would hide every object. Say *show all* to bring them back, "
            "or *undo*."
        )
    return tuple(sorted(after))
