"""Which language a question is written in, for ``answer <lang> ...`` prompts.

Uses py3langid (a maintained fork of langid.py that ships its own naive Bayes
model, ~4.5 MB) restricted to the languages PaliGemma 2 answers in
(``vocab.LANGUAGES``). The model is loaded on first use (1-3 s on a 2-core
CPU, once per process; then ~0.1 ms a question: ``python -m
bench.intent_language``), so importing this module and starting the app stay
fast; the chat parses in a worker thread so that first load never blocks.
Short or ambiguous text falls back to English: a wrong language costs the
user an unreadable answer, English costs nothing.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from typing import Any

from core.intent.vocab import DEFAULT_LANGUAGE, LANGUAGES

logger = logging.getLogger(__name__)

# Below these the classifier guesses: "ok?" scores 3 % for its best language.
MIN_LETTERS = 6  # letters (any script) in the text
MIN_CONFIDENCE = 0.5  # probability of the best language among PaliGemma's
# py3langid code -> PaliGemma code where the two differ.
_FROM_LANGID = {"tl": "fil", "qu": "quz"}

_lock = threading.Lock()
_identifier: Any = None  # py3langid LanguageIdentifier, built on first use


def detect_language(text: str, min_confidence: float = MIN_CONFIDENCE) -> str:
    """The PaliGemma language code of ``text`` ("es", "de", "zh"...), or "en".

    English is returned for text with fewer than ``MIN_LETTERS`` letters, and
    when the best language's probability is below ``min_confidence``.
    """
    letters = sum(unicodedata.category(c).startswith("L") for c in text)
    if letters < MIN_LETTERS:
        return DEFAULT_LANGUAGE
    code, confidence = _get_identifier().classify(text)
    code = _FROM_LANGID.get(code, code)
    if confidence < min_confidence or code not in LANGUAGES:
        logger.debug("language of %r unsure (%s %.2f): English", text, code, confidence)
        return DEFAULT_LANGUAGE
    return code


def supported_codes() -> tuple[str, ...]:
    """PaliGemma language codes the classifier can recognise (its own codes)."""
    identifier = _get_identifier()
    return tuple(_FROM_LANGID.get(c, c) for c in identifier.labels)


def _get_identifier() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            _identifier = _load_identifier()
    return _identifier


def _load_identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    to_langid = {ours: theirs for theirs, ours in _FROM_LANGID.items()}
    known = set(identifier.labels)
    wanted = [to_langid.get(code, code) for code in LANGUAGES]
    identifier.set_languages([code for code in wanted if code in known])
    logger.info("language identifier loaded (%d languages)", len(identifier.labels))
    return identifier
