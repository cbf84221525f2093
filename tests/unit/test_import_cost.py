"""The TUI's first frame imports only what it draws: the session screen, the engine's front
door and Textual. podman-py (with requests and urllib3), the runner, the build screen, the cache
explanations, the layers' reader and the debug shell are imported when first used (a build,
the layers screen, a shell). Checked in a fresh interpreter, as a user starts it."""

from __future__ import annotations

import json
import subprocess
import sys

LATER = ("podman", "requests", "urllib3", "humanize", "tui.engine.runner",
         "tui.engine.cache_why", "tui.engine.cache_inputs", "tui.engine.layer_reader",
         "tui.engine.layers", "tui.engine.tar_headers", "tui.engine.debug_shell",
         "tui.engine.debug_record", "tui.screens.build", "tui.screens.layers",
         "tui.screens.history", "tui.screens.compare")


def test_the_first_screen_imports_nothing_it_does_not_draw() -> None:
    code = ("import json, sys\n"
            "import tui.app\n"
            "from tui.screens.session import SessionScreen\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    loaded = json.loads(out.stdout)
    early = [name for name in loaded if name.split(".")[0] in LATER or name in LATER]
    assert early == []
