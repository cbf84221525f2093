"""The Containerfile parser (the ``dockerfile`` package) is Go, loaded into this process: a
Ctrl-C that arrived while its runtime started crashed buildcage (SIGSEGV, about 1 in 150
Ctrl-Cs at 0.08-0.2 s after start on a loaded machine, measured) or hung it. The cancelling
signals are held while it loads, and arrive right after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, os, signal, sys
seen = []
signal.signal(signal.SIGINT, lambda signum, frame: seen.append("dockerfile" in sys.modules))


class SignalOnLoad:
    """Sends this process SIGINT as the Go package is about to load."""

    def find_spec(self, name, path=None, target=None):
        if name == "dockerfile":
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, SignalOnLoad())
import tui.engine.containerfile  # the first to import the parser, as a build does
import tui.engine.cache_inputs
print(json.dumps(seen))
'''


def test_a_signal_during_the_go_parsers_load_arrives_once_it_is_loaded() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True)
    assert json.loads(out.stdout) == [True]  # handled once, after the load, not during it


def test_only_one_module_loads_the_go_parser() -> None:
    importers = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tui").rglob("*.py")
                       if any(line.strip().startswith(("import dockerfile", "from dockerfile"))
                              for line in p.read_text().splitlines()))
    assert importers == ["tui/engine/go_parser.py"]
