"""ReDoS: no chat message may hold the CPU (and the GIL) for long.

Python's ``re`` holds the GIL, so one slow pattern on one anonymous message
froze every request of the server: "region" + 300 spaces + "x" took 12.9 s
(n^4 in the region patterns), "segment cat" + 1000 commas + "x in image 1 and
the dog in image 2" 5.8 s (n^3 in the connectors), ", and" repeated 14 times
7 s (exponential). A seeded fuzz sends thousands of such messages, up to
MAX_PROMPT_CHARS, through every parser a door calls, and every pattern of the
parsers on raw text (defence in depth behind the whitespace normalising), and
fails when one call is far slower than the typical one.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import random
import re
import signal
import statistics
import time
from collections.abc import Callable, Iterator

import pytest

from api.openai_chat import REPLAY_CHARS, REPLAY_TURNS, parse_chat
from api.openai_content import attached_image_names, typed_text
from api.openai_tasks import answer_task
from core.config import Settings
from core.errors import UserInputError
from core.intent import parse_intent, parse_requests
from core.intent.region import split_region
from core.security.redact import redact

MAX_CHARS = Settings().max_prompt_chars
SEED = 20261206
RATIO = 100  # a call this many times slower than the median fails...
FLOOR_S = 0.01  # ...unless it is under this (timer and scheduler noise)
CAP_S = 0.5  # ...and any call over this fails, whatever the median
DEADLINE_S = 2.0  # a call still running now is stopped: the test fails fast
HEADS = (
    "", "region", "region ", "zoom into", "crop to the", "focus on", "look at",
    "detect", "segment", "segment cat", "find the dogs", "image 1", "images 1",
    "photo #", "and", "also", "then", "from", "in the region from 100",
    "only 1", "remove 2", "hide the boxes", "answer en", "caption in",
    "where is the cat", "draw a", "what is", "describe", "2x", "http:", "a.",
    "/home", "please", "the cat,", "(",
)  # fmt: skip
RUNS = (
    " ", "\t", "\n", "\u00a0", "\u3000", " \t\n", ",", ";", ":", "1", ".", "1.",
    "0,", ", ", " ,", "; ", ": ", ", and", " and", "and ", "&", "-", "#", "(",
    "()", "'", '"', "a.", "a-", "x@", "/", "1 ", "images 1 and ", " image ",
)  # fmt: skip
TAILS = (
    "", "x", "!", "?", " in image 1 and the dog in image 2", " to 5,5",
    "200 to 300,400", " please", " too", " is", " located", " cat.jpg", "@h",
)  # fmt: skip
MIXED = " \t\n\u00a0,;:.1&-#()'a"
# Every module whose patterns read user (or model) text.
PATTERN_MODULES = (
    "core.intent.region", "core.intent.requests", "core.intent.text",
    "core.intent.vocab", "core.intent.objects", "core.intent.refer",
    "core.intent.parse", "core.intent.language", "api.request",
    "core.intent.everything", "core.intent.nouns",
    "core.tiling", "core.security.markdown", "core.security.redact",
    "api.openai_content", "api.openai_tasks",
)  # fmt: skip


class Overran(Exception):
    """A call ran past DEADLINE_S."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise Overran in the main thread after ``seconds`` (``re`` checks signals)."""

    def _overran(*_: object) -> None:
        raise Overran

    previous = signal.signal(signal.SIGALRM, _overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attacks(count: int, rng: random.Random) -> list[str]:
    """``count`` messages: a keyword, a long run of one filler (or a mix), a
    tail; a quarter exactly MAX_CHARS long, the rest log-uniform in length."""
    out = []
    for index in range(count):
        head, tail = rng.choice(HEADS), rng.choice(TAILS)
        room = MAX_CHARS - len(head) - len(tail)
        size = room if index % 4 == 0 else int(math.exp(rng.uniform(0, math.log(room))))
        if rng.random() < 0.2:
            run = "".join(rng.choice(MIXED) for _ in range(size))
        else:
            piece = rng.choice(RUNS)
            run = (piece * (size // len(piece) + 1))[:size]
        out.append(head + run + tail)
    return out


def chat_door(text: str) -> object:
    """What /v1/chat/completions parses for a one-message conversation."""
    try:
        return parse_chat([{"role": "user", "content": text}], MAX_CHARS)
    except UserInputError:  # e.g. only whitespace: "ask something"
        return None


def task_door(text: str) -> object:
    """A chat UI's background task whose history is ``text`` (no length cap)."""
    prompt = f'### Task:\n{{ "follow_ups": [] }}\n<chat_history>\n{text}'
    return answer_task([{"role": "user", "content": prompt}], MAX_CHARS)


def timed(call: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    with deadline(DEADLINE_S):
        try:
            call(text)
        except Overran:
            pytest.fail(f"{call.__qualname__} ran over {DEADLINE_S} s on {text!r:.300}")
    return time.perf_counter() - start


def assert_no_outlier(
    name: str, call: Callable[[str], object], texts: list[str]
) -> None:
    """Each call within RATIO x the median (FLOOR_S at least) and CAP_S; a slow
    one is timed twice more and judged on its best time (noise is one-off)."""
    times = [timed(call, text) for text in texts]
    limit = min(max(RATIO * statistics.median(times), FLOOR_S), CAP_S)
    slow = []
    for text, first in zip(texts, times, strict=True):
        if first > limit:
            best = min(first, timed(call, text), timed(call, text))
            if best > limit:
                slow.append((best, text))
    slow.sort(reverse=True)
    assert not slow, (
        f"{name}: {len(slow)} input(s) over {limit * 1000:.1f} ms (median "
        f"{statistics.median(times) * 1000:.2f} ms); worst {slow[0][0]:.2f} s on "
        f"{slow[0][1]!r:.300}"
    )


def patterns() -> Iterator[tuple[str, re.Pattern[str]]]:
    """Every compiled pattern of PATTERN_MODULES (in tuples and dicts too)."""
    for module_name in PATTERN_MODULES:
        module = importlib.import_module(module_name)
        for attr, value in vars(module).items():
            if isinstance(value, dict):
                values = tuple(value.values())
            else:
                values = tuple(value) if isinstance(value, tuple | list) else (value,)
            for number, pattern in enumerate(values):
                if isinstance(pattern, re.Pattern):
                    yield f"{module_name}.{attr}[{number}]", pattern


@pytest.fixture(scope="module")
def texts() -> list[str]:
    parse_intent("how many cats are there?")  # loads the language identifier
    return attacks(1200, random.Random(SEED))


@pytest.mark.parametrize(
    "name, call",
    [
        ("parse_intent", parse_intent),
        ("parse_requests", parse_requests),
        ("parse_chat", chat_door),
        ("typed_text", typed_text),
        ("attached_image_names", attached_image_names),
        ("chat UI task", task_door),
        ("split_region (raw text)", split_region),
        ("redact", redact),
    ],
)
def test_no_message_is_slow_to_parse(texts, name, call) -> None:
    assert_no_outlier(name, call, texts)


def test_every_pattern_is_fast_on_raw_text(texts) -> None:
    """Behind the normalising: each pattern searched over unnormalised text."""
    found = dict(patterns())
    assert len(found) > 40, sorted(found)  # the audit did find them
    sample = texts[::4]
    for name, pattern in found.items():
        assert_no_outlier(name, pattern.search, sample)


def test_the_reported_messages_are_fast() -> None:
    parse_intent("how many cats are there?")
    reported = (
        "region" + " " * 1993 + "x",
        "segment cat" + "," * 1000 + "x in image 1 and the dog in image 2",
        "segment cat" + ", and" * 300 + " x in image 1 and the dog in image 2",
        "zoom into" + "\u00a0" * 1990,
    )
    for text in reported:
        for call in (parse_intent, parse_requests, chat_door):
            assert timed(call, text) < CAP_S, (call.__qualname__, text[:40])


def test_unclosed_chat_ui_blocks_are_fast() -> None:
    """Open WebUI's blocks are cut with str.find: one pass over a message of
    a request body's size, however many unclosed tags it holds."""
    body = 4 * 1024 * 1024  # an upload-sized text part
    for tag in ("<source", "<attached_files>", "<context>", "<user_query>"):
        text = (tag * (body // len(tag)))[:body]
        assert timed(typed_text, text) < 4 * CAP_S, tag
        assert timed(attached_image_names, text) < 4 * CAP_S, tag
    files = "<attached_files>" + "<file a" * (body // 7) + "</attached_files>"
    assert timed(attached_image_names, files) < 4 * CAP_S
    history = "USER: " + "### Task: <chat_history>" * (body // 24)
    assert timed(task_door, history) < 4 * CAP_S


def user(text: str, image: str | None = None) -> dict[str, object]:
    parts: list[dict[str, object]] = [{"type": "text", "text": text}]
    if image is not None:
        parts.append({"type": "image_url", "image_url": {"url": image}})
    return {"role": "user", "content": parts}


def test_a_long_conversation_costs_a_few_parses() -> None:
    """200 turns of MAX_CHARS (finding 10): only the newest are replayed, so
    the whole costs a few one-turn conversations, not 200 of them."""
    parse_intent("how many cats are there?")
    for filler in ("segment cat" + "," * (MAX_CHARS - 11), "what is " * 250):
        turn = user(filler[:MAX_CHARS])
        one = min(timed(chat_of([turn]), "") for _ in range(3))
        whole = min(timed(chat_of([turn] * 200), "") for _ in range(3))
        assert whole < min(20 * one + FLOOR_S, CAP_S), (
            f"{whole:.3f} s for 200 turns, {one:.4f} s for one, of {filler[:20]!r}"
        )


def chat_of(messages: list[dict[str, object]]) -> Callable[[str], object]:
    def door(_: str) -> object:
        return parse_chat(messages, MAX_CHARS)

    return door


@pytest.mark.parametrize(
    "fillers, prompt",
    [
        ([user("hello")] * (REPLAY_TURNS - 2), "segment cat ; dog"),  # in reach
        ([user("hello")] * (REPLAY_TURNS - 1), None),  # the cat is too old
        ([user("hello " * 300)] * (REPLAY_CHARS // 1800 + 1), None),  # too long
    ],
)
def test_only_the_newest_turns_shape_the_request(fillers, prompt) -> None:
    messages = [user("segment the cat", "data:image/png;base64,QQ=="), *fillers]
    request = parse_chat([*messages, user("also the dog")], MAX_CHARS)
    assert request.image_count == 1  # the old turn's photo still counts
    assert request.image_url == "data:image/png;base64,QQ=="
    if prompt is None:
        assert request.intent.action == "clarify", request.intent
    else:
        assert request.intent.prompt == prompt
