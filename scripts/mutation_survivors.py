"""Group the surviving mutants of a mutation.sh scratch folder by kind.

    .venv/bin/python scripts/mutation_survivors.py /tmp/mutation-123/core_images_py

Prints JSON: counts per kind and, per kind, each mutant's name with its
changed line. Kinds: "log" (a logger call), "message" (only the text of a
string changed: error wording, not behaviour), "code" (anything else: a
missing test or an equivalent mutant, to judge by reading it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path


def classify(diff: str) -> tuple[str, str]:
    removed = [
        ln[1:]
        for ln in diff.splitlines()
        if ln.startswith("-") and not ln.startswith("---")
    ]
    added = [
        ln[1:]
        for ln in diff.splitlines()
        if ln.startswith("+") and not ln.startswith("+++")
    ]
    line = (added or removed or [""])[0].strip()
    if any(re.match(r"\s*logger\.", text) for text in removed):
        return "log", line
    strip = re.compile(r"(\"[^\"]*\"|'[^']*')")
    if removed and [strip.sub("S", t) for t in removed] == [
        strip.sub("S", t) for t in added
    ]:
        return "message", line
    return "code", line


def main(scratch: str) -> int:
    os.chdir(scratch)
    sys.path.insert(0, scratch)
    from mutmut.__main__ import find_mutant, get_diff_for_mutant

    results = Path("results.txt").read_text(encoding="utf-8").splitlines()
    names = [
        match.group(1)
        for match in (
            re.match(r"\s*([\w.ǁ]+__mutmut_\d+): (survived|no tests)", ln)
            for ln in results
        )
        if match
    ]
    groups: dict[str, list[str]] = {"log": [], "message": [], "code": []}
    for name in names:
        diff = get_diff_for_mutant(name, path=find_mutant(name).path)
        kind, line = classify(diff)
        groups[kind].append(f"{name}: {line[:100]}")
    counts = {kind: len(items) for kind, items in groups.items()}
    print(json.dumps({"scratch": scratch, "counts": counts, **groups}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
