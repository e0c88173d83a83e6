#!/usr/bin/env bash
# Static checks (run by scripts/test.sh before pytest): lint, format, types, import contracts.
# Rule set, strictness and contracts are in pyproject.toml ([tool.ruff], [tool.mypy], [tool.importlinter]).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # check this tree, whichever checkout .venv points at
echo "== ruff check" && .venv/bin/ruff check .
echo "== ruff format --check" && .venv/bin/ruff format --check .
echo "== mypy gateway routers" && .venv/bin/mypy
echo "== import contracts" && .venv/bin/lint-imports --no-logo
