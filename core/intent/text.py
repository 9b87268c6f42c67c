"""Helpers for ``core.intent.parse``: cleaning, image refs, languages, targets, prompts.

Pure functions of text; no conversation state.
"""

from __future__ import annotations

import re
import unicodedata

from core.intent import vocab as v
from core.types import GROUNDED_TASKS, Intent

PUNCT_ENDS = " \t,;:.!?¿¡-\"'()[]"
LEADS = {
    "segment": re.compile(rf"^(?:{v.SEGMENT_LEADS})\b\s*"),
    "detect": re.compile(rf"^(?:{v.DETECT_LEADS})\b\s*"),
}
_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"'}
)
# Linear time on any text: a whitespace run is taken whole (``\s++``) and only
# from its first character (a match never starts later inside the run).
_SPLIT = re.compile(
    r"(?:(?<!\s)\s++)?(?:;|,|&|\+|/|\band\b|\bor\b|\bplus\b|\bas well as\b)\s*+"
)
_NAMES = "|".join(
    re.escape(n) for n in sorted(v.LANGUAGE_BY_NAME, key=len, reverse=True)
)
_CODES = "|".join(c for c in v.LANGUAGES if c not in v.AMBIGUOUS_CODES)
_LANG_PHRASE = re.compile(
    r"(?<![\s,;:-])[\s,;:-]*+\b(?:(?:please\s+)?(?:answer|reply|respond|write\s+it|say\s+it|"
    r"translate(?:\s+(?:it|this|that))?)\s+)?(?:(?:in|into|to|auf|en)\s+"
    rf"(?P<name>{_NAMES})|in\s+(?P<code>{_CODES}))(?!\w)(?:\s+please)?",
    re.IGNORECASE,
)
_LANG_NAME = re.compile(rf"(?<!\w)(?:{_NAMES})(?!\w)")
_PRONOUN_WORDS = frozenset({"it", "them", "they", "those", "these", "this", "that"})


def clean_text(text: str) -> str:
    """NFKC, straight quotes, no control/format chars, single spaces.

    The one normaliser of user text: ``parse_intent`` and ``parse_requests``
    call it first, so every door (chat, REST, OpenAI) parses the same words
    and no pattern sees a run of whitespace. Linear time.
    """
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES)
    text = "".join(
        c for c in text if c.isspace() or unicodedata.category(c) not in ("Cf", "Cc")
    )
    return _join(text)


def _join(text: str) -> str:
    """Collapse whitespace and drop spaces left before punctuation."""
    return re.sub(r"\s+([?!.,;:])", r"\1", " ".join(text.split()))


LONE_DETERMINERS = frozenset(
    "the an this that these those my your his her their its our of some any "
    "every each both".split()
)


def is_plain_target(part: str) -> bool:
    """True for an object name as PaliGemma takes it: "left wheel", "a", "cats"."""
    words = part.split()
    if not re.fullmatch(r"[\w'-]+(?: [\w'-]+)*", part) or len(words) > 6:
        return False
    if len(words) > 1 and words[0] in v.DETERMINERS:
        return False  # "the dog" is natural language, "a" alone is a name
    if part in LONE_DETERMINERS:
        return False  # "segment the": a sentence cut short, not an object
    return (
        part not in v.PRONOUNS
        and part not in v.VAGUE_TARGETS
        and not any(w in v.NON_TARGET_WORDS or w in _PRONOUN_WORDS for w in words)
        and not any(w in ("and", "or") for w in words)
    )


def extract_image_ref(text: str) -> tuple[str | None, bool, str, str]:
    """Find one "on image 2"-like phrase.

    Returns (ref, is_select_verb, neutral_text, stripped_text): ``ref`` is "1",
    "2"..., "last", "all", a file name as typed, or None; ``neutral_text`` has
    the phrase replaced by "the image" (questions stay readable);
    ``stripped_text`` has it removed.
    """
    for pattern in v.IMAGE_REFS:
        m = pattern.search(text)
        if m is None:
            continue
        groups = m.groupdict()
        if groups.get("ord"):
            ordinal = groups["ord"].lower()
            ref = v.ORDINALS.get(ordinal) or str(int(re.sub(r"\D", "", ordinal)))
        elif groups.get("num"):
            ref = str(int(groups["num"]))
        elif groups.get("all"):
            ref = "all"
        else:
            ref = groups.get("q1") or groups.get("q2") or groups["bare"]
        prep = " ".join((groups.get("prep") or "").lower().split())
        select = prep in v.SELECT_VERBS
        neutral = "" if select else f"{prep} the image".strip()
        before, after = text[: m.start()], text[m.end() :]
        return (
            ref,
            select,
            _join(f"{before} {neutral} {after}"),
            _join(f"{before} {after}"),
        )
    return None, False, text, text


def extract_language(text: str) -> tuple[str | None, str]:
    """Find "in German"/"into French"/"in de"; returns (code or None, rest)."""
    m = _LANG_PHRASE.search(text)
    if m is None:
        return None, text
    if m["code"]:
        code = m["code"].lower()
    else:
        code = v.LANGUAGE_BY_NAME[m["name"].lower()]
    return code, _join(f"{text[: m.start()]} {text[m.end() :]}")


def language_named(low: str) -> str:
    """The first language name anywhere in ``low`` ("german caption"), or "en"."""
    m = _LANG_NAME.search(low)
    return v.LANGUAGE_BY_NAME[m[0]] if m else v.DEFAULT_LANGUAGE


def strip_polite(low: str) -> str:
    """Drop "please", "can you", "now", "for me"... around a lowercase request."""
    previous = None
    while previous != low:
        previous = low
        low = v.POLITE_PREFIX.sub("", low, count=1).strip(PUNCT_ENDS)
        low = v.POLITE_SUFFIX.sub("", low).strip(PUNCT_ENDS)
    return low


def split_targets(phrase: str, strict: bool = True) -> tuple[str, ...] | None:
    """ "the cars, people and bikes" -> ("car", "person", "bike").

    Lowercase input. Drops articles, numbers and punctuation, singularises
    the head noun. Returns None when the phrase reads like a question rather
    than object names ("this photo taken", "the cat sitting"); with
    ``strict=False`` (the phrase follows a detect/segment verb) only names
    longer than 12 words are refused.
    """
    out: list[str] = []
    for part in _SPLIT.split(v.IMAGE_PHRASE.sub(" ", phrase)):
        words = [w.strip("'-_") for w in re.findall(r"[\w'-]+", part)]
        words = [w for w in words if w]
        if strict and any(w in v.NON_TARGET_WORDS for w in words):
            return None
        while words and (words[0] in v.DETERMINERS or words[0].isdigit()):
            words.pop(0)
        if not words:
            continue
        if len(words) > (6 if strict else 12):
            return None
        head = words.index("of") - 1 if "of" in words[1:] else len(words) - 1
        words[head] = v.singularize(words[head])
        if (name := " ".join(words)) not in out:
            out.append(name)
    return tuple(out)


def run_intent(
    task: str,
    targets: tuple[str, ...] = (),
    lang: str = "en",
    question: str = "",
    refinement: str | None = None,
) -> Intent:
    """The Intent that runs ``task``; ``prompt`` is built in PaliGemma's grammar."""
    if task in GROUNDED_TASKS:
        prompt, lang = f"{task} " + " ; ".join(targets), "en"
    elif task == "ocr":
        prompt = "ocr"
    elif task in ("answer", "question"):
        prompt = f"{task} {lang} {question}"
    else:
        prompt = f"{task} {lang}"
    return Intent(
        task=task,
        prompt=prompt,
        targets=targets,
        language=lang,
        follows_previous=refinement is not None,
        refinement=refinement,
    )


def raw_question(cleaned: str) -> Intent | None:
    """`answer en <question>` / `question en <answer>` pass through as typed."""
    m = re.fullmatch(r"(answer|question) (\w+) (.+)", cleaned, re.IGNORECASE)
    if m and m[2].lower() in v.LANGUAGES and m[2].lower() != "it":
        return run_intent(m[1].lower(), lang=m[2].lower(), question=m[3])
    return None


def raw_prompt(cleaned: str) -> Intent | None:
    """A prompt already in PaliGemma's grammar passes through unchanged.

    "it" is read as a pronoun ("describe it"), not Italian: say "in Italian".
    """
    low = cleaned.lower()
    if low == "ocr":
        return run_intent("ocr")
    m = re.fullmatch(r"(caption|describe)(?: (\w+))?", low)
    if m and (m[2] is None or (m[2] in v.LANGUAGES and m[2] != "it")):
        return run_intent(m[1], lang=m[2] or v.DEFAULT_LANGUAGE)
    m = re.fullmatch(r"(detect|segment) (.+)", low)
    if m:
        parts = tuple(" ".join(p.split()) for p in m[2].split(";"))
        if all(is_plain_target(p) for p in parts):
            return run_intent(m[1], parts)
    return None
