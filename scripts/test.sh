#!/usr/bin/env bash
# Install everything the tests need, run the static checks, then the whole test suite.
#   scripts/test.sh [pytest args...]
# This is the README's test command and what CI (.ci/run) runs on a fresh clone.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test || exit 1
scripts/check.sh || exit 1
.venv/bin/pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
