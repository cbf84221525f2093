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
# Byte-code for buildcage's own modules. This machine (and CI) sets PYTHONDONTWRITEBYTECODE=1,
# so an editable install compiled tui/ on every start: 0.5 s of every CLI call and of the TUI's
# first paint (import of tui.app and the engine, 1.7-2.3 s against 2.3-2.6 s at load 8). An
# installed wheel gets its .pyc from pip; this gives the checkout the same. Up to date: 0.1 s.
.venv/bin/python -m compileall -q tui
