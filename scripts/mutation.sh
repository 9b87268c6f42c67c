#!/usr/bin/env bash
# Mutation testing with mutmut 3 (pinned in requirements.txt): does the suite
# notice when a module's code is changed?
#
#   scripts/mutation.sh core/tokens.py core/geometry.py
#   scripts/mutation.sh api/fetch.py=tests/test_api_guards.py
#   SAMPLE=4 scripts/mutation.sh core/intent      # every 4th mutant only
#
# MODULE is a file or a package folder under core/, api/, cli/ or web/; "=TESTS" names the test
# files (comma-separated) that guard it, otherwise the table below or
# tests/test_<name>.py is used. Each module runs in its own scratch copy of the
# repository (mutmut writes mutants/ there), so the working tree is untouched.
# Prints one JSON line per module: {"module", "killed", "survived", ...,
# "score"} and the surviving mutants' names; `mutmut show NAME` in the scratch
# folder (printed) shows each diff. Not part of CI: a module takes minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
JOBS="${JOBS:-2}"
SAMPLE="${SAMPLE:-1}"
WORK="${MUTATION_DIR:-${TMPDIR:-/tmp}/mutation-$$}"

default_tests() {
    case "$1" in
        core/tokens.py) echo tests/test_tokens.py ;;
        core/geometry.py) echo tests/test_geometry.py ;;
        core/images.py)
            echo tests/test_images.py,tests/test_image_messages.py,tests/test_image_decode.py ;;
        core/export | core/export/*)
            echo tests/test_export.py,tests/test_downloads.py,tests/test_export_contract.py ;;
        core/intent | core/intent/*)
            echo tests/test_intent.py,tests/test_intent_requests.py,tests/test_region.py,tests/test_intent_messages.py,tests/test_intent_edges.py ;;
        core/conversation.py)
            echo tests/test_conversation.py,tests/test_conversation_state.py,tests/test_persistence_state.py,tests/test_kept.py ;;
        api/request.py) echo tests/test_api_request.py,tests/test_api_guards.py ;;
        api/fetch.py)
            echo tests/test_api_guards.py,tests/test_fetch.py,tests/test_fetch_origin.py ;;
        core/ratelimit.py) echo tests/test_ratelimit.py,tests/test_api_guards.py ;;
        core/kept.py) echo tests/test_kept.py,tests/test_closely.py ;;
        *)
            local name
            name="$(basename "${1%.py}")"
            echo "tests/test_${name}.py" ;;
    esac
}

if [ "$#" -eq 0 ]; then
    sed -n '2,15p' "$0"
    exit 2
fi

mkdir -p "$WORK"
for spec in "$@"; do
    module="${spec%%=*}"
    tests="${spec#*=}"
    [ "$tests" = "$spec" ] && tests="$(default_tests "$module")"
    module="${module%/}"
    if [ ! -e "$ROOT/$module" ]; then
        echo "no such module: $module (expected a path under core/, api/, cli/ or web/)" >&2
        exit 2
    fi
    copy="$WORK/$(echo "$module" | tr '/.' '__')"
    rm -rf "$copy" && mkdir -p "$copy"
    (cd "$ROOT" && git ls-files -co --exclude-standard -z) |
        (cd "$ROOT" && xargs -0 cp --parents -t "$copy" 2>/dev/null || true)
    if [ -d "$module" ] || [ -d "$ROOT/$module" ]; then pattern="$module/*"; else pattern="$module"; fi
    test_args="$(echo "$tests" | tr ',' '\n' | sed 's/.*/"&",/' | tr -d '\n')"
    cat >>"$copy/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["core", "api", "cli", "web"]
only_mutate = ["$pattern"]
also_copy = ["chat", "scripts", "logging_config.py", "chainlit_app.py"]
pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-x"]
pytest_add_cli_args_test_selection = [$test_args]
# Log calls are not mutated: their wording is not behaviour (docs/testing.md).
do_not_mutate_patterns = ['^\\s*logger\\.']
EOF
    (
        cd "$copy"
        export PATH="$(dirname "$PYTHON"):$PATH"
        if [ "$SAMPLE" -gt 1 ]; then
            # Generate all mutants, then run every SAMPLE-th one by name.
            "$PYTHON" -m mutmut run --max-children "$JOBS" "no-such-mutant" >/dev/null 2>&1 || true
            mapfile -t names < <("$PYTHON" -m mutmut results --all true 2>/dev/null |
                awk -F: '{print $1}' | sed 's/^ *//' | awk "NR % $SAMPLE == 1")
            "$PYTHON" -m mutmut run --max-children "$JOBS" "${names[@]}" >run.log 2>&1 || true
        else
            "$PYTHON" -m mutmut run --max-children "$JOBS" >run.log 2>&1 || true
        fi
        "$PYTHON" -m mutmut results --all true >results.txt 2>&1 || true
        "$PYTHON" - "$module" "$copy" "$SAMPLE" <<'PY'
import json, re, sys
module, copy, sample = sys.argv[1], sys.argv[2], int(sys.argv[3])
counts, survivors = {}, []
for line in open(f"{copy}/results.txt", encoding="utf-8"):
    match = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)", line)
    if not match:
        continue
    name, status = match.group(1), match.group(2).strip()
    counts[status] = counts.get(status, 0) + 1
    if status in ("survived", "no tests"):
        survivors.append(name)
# "no tests": no test even runs that code, so nothing could kill the mutant.
ran = sum(counts.get(k, 0) for k in ("killed", "survived", "timeout", "no tests"))
killed = counts.get("killed", 0) + counts.get("timeout", 0)
score = round(100 * killed / ran, 1) if ran else None
print(json.dumps({"module": module, "sample_every": sample, **counts,
                  "score": score, "scratch": copy}))
for name in survivors:
    print("  survived:", name)  # includes "no tests"
PY
    )
done
