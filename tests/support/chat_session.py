"""A Chainlit chat session without a server: the real ``cl.Message``, ``cl.Step``
and ``cl.user_session`` over a context whose emitter records what the browser
would receive, and chat services over a FakeModel (no queue thread, no socket).

``ChatSession.say(text, *photos)`` drives ``chat.replies.handle_message`` as
Chainlit's ``on_message`` would; ``seen()`` is what the user sees.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.context import ChainlitContext, context_var
from chainlit.emitter import BaseChainlitEmitter
from chainlit.session import HTTPSession
from chainlit.user_session import user_sessions
from PIL import Image

from chat.options import DEFAULT_OPTIONS, set_options
from chat.replies import handle_message
from chat.services import ChatServices
from core.config import Settings
from core.conversation import Conversation
from core.engine.base import ModelStatus
from core.engine.queue import ModelQueue
from core.persist.service import Persistence
from core.service import Services
from tests.support.fakes import FakeModel


class FakeEngine:
    """FakeModel behind the engine's status surface (always ready)."""

    def __init__(self, model: FakeModel) -> None:
        self.model = model

    @property
    def status(self) -> ModelStatus:
        ready = ("ready", "fake/model", "cpu", "float32", True, True, None, 0.0)
        return ModelStatus(*ready)

    def start_background_load(self) -> None:
        raise AssertionError("a ready engine is never loaded again")

    def generate(self, image, prompt, **decoding):
        decoding.pop("on_text", None)  # FakeModel does not stream
        decoding.pop("cancel", None)
        return self.model.generate(image, prompt, **decoding)

    def decode_masks(self, seg_indices):
        return self.model.decode_masks(seg_indices)


class RecordingEmitter(BaseChainlitEmitter):
    """Keeps every step (messages and tool steps) and element sent."""

    def __init__(self, session: HTTPSession) -> None:
        super().__init__(session)
        self.steps: dict[str, dict[str, Any]] = {}  # id -> last state, in order
        self.elements: list[dict[str, Any]] = []
        self.chat_settings: list[dict[str, Any]] = []  # the panels shown

    async def send_step(self, step_dict) -> None:
        self.steps[step_dict["id"]] = dict(step_dict)

    async def update_step(self, step_dict) -> None:
        self.steps[step_dict["id"]] = dict(step_dict)

    async def delete_step(self, step_dict) -> None:
        self.steps.pop(step_dict["id"], None)

    async def stream_start(self, step_dict) -> None:
        self.steps[step_dict["id"]] = dict(step_dict)

    async def send_element(self, element_dict) -> None:
        self.elements.append(dict(element_dict))

    def set_chat_settings(self, settings) -> None:  # not a coroutine in Chainlit
        self.chat_settings.append(settings)


class _Session(HTTPSession):
    """An HTTP session whose files live in a test folder."""

    def __init__(self, files_dir: Path) -> None:
        super().__init__(
            id=str(uuid.uuid4()),
            client_type="webapp",
            environ={"asgi.scope": {"client": ("127.0.0.1", 5000)}},
        )
        self._files_dir = files_dir

    @property
    def files_dir(self) -> Path:
        return self._files_dir


@dataclass
class ChatSession:
    """One chat session over ``model``; build it with ``open_chat``."""

    model: FakeModel
    services: ChatServices
    emitter: RecordingEmitter
    folder: Path
    _seen: int = field(default=0)

    @property
    def conversation(self) -> Conversation:
        return cl.user_session.get("conversation")

    async def say(self, text: str, *photos: tuple[str, tuple[int, int]]) -> list[str]:
        """Send ``text`` with ``photos`` ((name, (width, height)) each, solid
        colours); returns the assistant messages this message produced."""
        elements = []
        for name, size_wh in photos:
            path = self.folder / "uploads" / f"{uuid.uuid4().hex}-{name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size_wh, (90, 120, 30)).save(path, format="PNG")
            elements.append(cl.Image(path=str(path), name=name))
        await handle_message(self.services, cl.Message(content=text, elements=elements))
        replies = self.messages()
        new, self._seen = replies[self._seen :], len(replies)
        return new

    def messages(self) -> list[str]:
        """Every assistant message's text as the user sees it, in order."""
        return [
            step["output"]
            for step in self.emitter.steps.values()
            if step["type"] == "assistant_message"
        ]

    def steps(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.emitter.steps.values() if s["name"] == name]

    def element_names(self) -> list[str]:
        return [e["name"] for e in self.emitter.elements]

    def prompts(self) -> list[str]:
        """What the model was asked, in order."""
        return [call["prompt"] for call in self.model.calls]


def open_chat(folder: Path, model: FakeModel, **settings: Any) -> ChatSession:
    """A new chat session (on_chat_start's state) bound to the running task."""
    config = Settings(
        data_dir=str(folder / "data"),
        load_on_start=False,
        **{"rate_limit_per_min": 10_000, **settings},
    )
    service = Services.build(
        config,
        FakeEngine(model),  # type: ignore[arg-type]
        ModelQueue(max_pending=4, timeout_s=30),
    )
    services = ChatServices(service=service, persist=Persistence.from_settings(config))
    session = _Session(folder / "session")
    emitter = RecordingEmitter(session)
    context_var.set(ChainlitContext(session, emitter))
    user_sessions.pop(session.id, None)
    cl.user_session.set("conversation", Conversation())
    set_options(DEFAULT_OPTIONS)
    return ChatSession(model, services, emitter, folder)
