"""What detecting a question's language costs: import, first use, each question.

Prints JSON. Each figure comes from a fresh interpreter (``python -c``), so
the one-time costs are not hidden by an earlier import:

- ``import_core_intent_s``: ``import core.intent`` (what app start pays; the
  identifier is not loaded), against ``import_with_identifier_s`` had it been
  loaded at import (the ratio is what lazy loading saves at start);
- ``first_question_s``: the first non-English question (loads py3langid's
  model, once per process);
- ``per_question_ms``: each question afterwards (median of the sample).

    python -m bench.intent_language
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys

QUESTIONS = (
    "¿cuántos perros hay en la foto?",
    "Was ist auf dem Bild?",
    "照片里有几只狗\uff1f",
    "how many dogs are there?",
    "Сколько собак на фото?",
)

_TIME = "import time; t0 = time.perf_counter(); {body}; print(time.perf_counter() - t0)"


def _timed(body: str, repeats: int = 3) -> float:
    """Median seconds of ``body`` in ``repeats`` fresh interpreters."""
    code = _TIME.format(body=body)
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        for _ in range(repeats)
    ]
    return statistics.median(runs)


def main() -> None:
    import_only = _timed("import core.intent")
    with_identifier = _timed(
        "import core.intent; from core.intent.language import _get_identifier; "
        "_get_identifier()"
    )
    first = (
        _timed(
            "from core.intent import parse_intent; "
            "parse_intent('Was ist auf dem Bild?')"
        )
        - import_only
    )

    from core.intent import parse_intent

    parse_intent(QUESTIONS[0])  # load once
    import time

    samples = []
    for _ in range(20):
        for question in QUESTIONS:
            start = time.perf_counter()
            parse_intent(question)
            samples.append((time.perf_counter() - start) * 1000)
    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "import_core_intent_s": round(import_only, 3),
                "import_with_identifier_s": round(with_identifier, 3),
                "lazy_load_saves_at_start_ratio": round(
                    with_identifier / import_only, 1
                ),
                "first_question_s": round(first, 3),
                "per_question_ms": round(statistics.median(samples), 2),
                "questions": len(samples),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
