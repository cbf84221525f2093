"""Keys and a word on the profiles."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from tui.screens.base import Dialog
from tui.styles_path import css_path

HELP = """\
# buildcage

Builds run with Buildah inside an unprivileged podman container; the profile decides what that
container can see of the host.

| Where | Key | Does |
|---|---|---|
| everywhere | `F1` `?` | this help |
| | `Ctrl+T` | light / dark theme |
| | `Ctrl+P` | command palette (screens, theme) |
| | `Ctrl+Q` | quit |
| session | `F5` | build with these settings |
| | `F2` | podman run / Kubernetes manifest of the plan |
| | `F3` `F4` | history · compare profiles |
| build | `c` | cancel the build |
| | `s` | a shell where a RUN failed (the TUI comes back when it ends) |
| | `l` | load the image into this host's podman (asks before moving a tag) |
| | `r` | run the loaded image (`podman run --rm -it`), then come back |
| | `i` | what each layer of the image holds, and the bytes it wastes |
| | `Esc` | back (once the build ended) |
| history | `r` `i` | rebuild the selected build · its image's layers |
| layers | `a` `c` `r` | show or hide what a layer added, changed, removed |
| compare | `F5` | run each chosen profile cold, then warm |

**Profiles.** `host-ro` reads host images without a pull, writes only its own store ·
`isolated` starts from an empty store each time, in its own user namespace · `project` keeps
one store per project · `host-rw` writes the host's store (asks first).

The security card's facts are read from a real builder container, created and removed again.
A build is *warm* when at least one step came from the cache.
"""


class HelpScreen(Dialog[None]):
    CSS_PATH = css_path("help.tcss")
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Markdown(HELP)
