#!/usr/bin/env bash
# Static checks (run by scripts/test.sh before pytest): lint, format.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff check" && .venv/bin/ruff check .
echo "== ruff format --check" && .venv/bin/ruff format --check .
