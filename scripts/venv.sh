#!/usr/bin/env bash
# Creates .venv and installs buildcage into it (editable, with test extras); reinstalls only
# when pyproject.toml or constraints.txt changed since the last install. constraints.txt pins
# the versions the tests were run with, so a new Textual release cannot move the snapshots.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.buildcage-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # pip's build chatter goes to a log; shown only when the install fails.
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip && \
         .venv/bin/python -m pip install -q -e '.[test]' -c constraints.txt; } > "$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
  echo "venv       installed buildcage into .venv"
else
  echo "venv       ok .venv"
fi
