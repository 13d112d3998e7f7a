#!/usr/bin/env bash
# The README's two commands:  bash scripts/run.sh repro   |   bash scripts/run.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = repro ]; then bash scripts/setup.sh --with-tex; else bash scripts/setup.sh; fi
export PATH="$PWD/.venv/bin:$PATH"
case "${1:-}" in
  repro)
    shift
    dvc repro "$@"
    dvc status
    qfair check-repro   # one verdict: did this machine reproduce the committed results?
    ;;
  test)
    shift
    ruff check .
    pytest -q "$@"
    ;;
  *)
    echo "usage: bash scripts/run.sh repro|test [extra arguments]" >&2
    exit 2
    ;;
esac
