#!/usr/bin/env bash
# Creates .venv and installs buildcage into it (editable, with test extras); reinstalls only
# when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.buildcage-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # pip's build chatter goes to a log; shown only when the install fails.
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip && \
         .venv/bin/python -m pip install -q -e '.[test]'; } > "$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
  echo "venv       installed buildcage into .venv"
else
  echo "venv       ok .venv"
fi
