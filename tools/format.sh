#!/usr/bin/env bash
# tools/format.sh: format llamanb's own code in place, with the formatters pinned in
# pyproject's `test` extra (make install brings them into .venv):
#   Python (src/ tests/ bench/ tools/): ruff's import sorting, then ruff format;
#   C++ (cpp/): clang-format with the repository's .clang-format.
# Not touched: vendor/ (llama.cpp's tree and its sync scripts) and stubs/ (stubgen's output,
# which the freshness test compares byte for byte). tests/test_format.py checks the result.
#
#   tools/format.sh            format
#   tools/format.sh --check    change nothing; exit non-zero when something is not formatted
set -euo pipefail

case "${1:-}" in
    "" | --check) ;;
    *) echo "usage: tools/format.sh [--check]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
PY_DIRS=(src tests bench tools)

# The pinned formatters: $RUFF / $CLANG_FORMAT when set, else those of the active virtual
# environment, else those of the project's .venv, else whatever PATH has.
tool() {
    local candidate
    for candidate in ${VIRTUAL_ENV:+"$VIRTUAL_ENV/bin/$1"} ".venv/bin/$1" "$(command -v "$1" || true)"; do
        if [[ -n $candidate && -x $candidate ]]; then echo "$candidate"; return; fi
    done
    echo "tools/format.sh: $1 is missing: make install (pyproject's test extra) brings it" >&2
    return 2
}
RUFF=${RUFF:-$(tool ruff)}
CLANG_FORMAT=${CLANG_FORMAT:-$(tool clang-format)}
CPP_FILES=(cpp/*.cpp cpp/*.h)

if [[ ${1:-} == --check ]]; then
    status=0
    "$RUFF" check "${PY_DIRS[@]}" || status=1
    "$RUFF" format --check "${PY_DIRS[@]}" || status=1
    "$CLANG_FORMAT" --dry-run -Werror "${CPP_FILES[@]}" || status=1
    exit "$status"
fi
"$RUFF" check --select I --fix --quiet "${PY_DIRS[@]}"
"$RUFF" format --quiet "${PY_DIRS[@]}"
"$CLANG_FORMAT" -i "${CPP_FILES[@]}"
