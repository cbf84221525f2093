"""End-of-build panels: the result (image, size, layers, push, cache, time) and the failure."""

from __future__ import annotations

import humanize
from rich.text import Text
from textual.reactive import reactive

from tui.engine.text import visible
from tui.state.build_state import BuildState
from tui.widgets.parts import PartsWidget

TAIL_LINES = 15


def size(value: int) -> str:
    return humanize.naturalsize(value)


class _Panel(PartsWidget):
    """Hidden until ``state`` is set (the build's end); set it again to redraw."""

    PARTS = "panel"
    COMPONENT_CLASSES = {"panel--title", "panel--label", "panel--muted"}

    state: reactive[BuildState | None] = reactive(None, layout=True, always_update=True)

    def watch_state(self, state: BuildState | None) -> None:
        self.display = state is not None

    def _field(self, text: Text, label: str, value: str) -> None:
        text.append(f"\n{label:<9}", self.part("label"))
        text.append(visible(value))  # build-derived: shown, never obeyed


class ResultPanel(_Panel):
    """What was built (or how far a canceled build got)."""

    def render(self) -> Text:
        text = Text()
        state = self.state
        if state is None or state.done is None:
            return text
        done = state.done
        finished, total = state.steps_finished, max(done.steps_total, len(state.rows))
        if done.status == "canceled":
            text.append("■ Canceled", self.part("title"))
            text.append(f" after {done.duration_s:.1f}s · {finished}/{total} steps finished")
            text.append("\n  the builder container was stopped and removed", self.part("muted"))
            return text
        image_id = done.image_id or state.image_id
        verb = "Unchanged" if state.unchanged is not None else "Built"
        text.append(f"✓ {verb} {visible(image_id[:12]) or 'image'}", self.part("title"))
        text.append(f" in {done.duration_s:.1f}s")
        if state.unchanged is not None:
            self._field(text, "ran", f"no container: nothing changed since build "
                                     f"#{state.unchanged.build}")
        info = state.image_info
        if info is not None:
            layers = ", ".join(size(layer) for layer in info.layers)
            count = len(info.layers)
            self._field(text, "size", f"{size(info.size)} in {count} layer{'s' * (count != 1)}")
            self._field(text, "layers", layers + (" · i shows their files"
                                                  if done.status == "succeeded" else ""))
            if info.overlay:
                self._field(text, "overlay", {"kernel": "the kernel's overlay",
                                              "fuse": "fuse-overlayfs"}.get(info.overlay,
                                                                            info.overlay))
        if state.pushed:
            for pushed in state.pushed:
                self._field(text, "pushed", pushed.ref)
                self._field(text, "digest", pushed.digest)
        elif done.pushed:
            self._field(text, "pushed", done.pushed)
        else:
            self._field(text, "pushed", "no push")
        if state.loaded is not None:
            self._field(text, "host", f"{state.loaded.tag} · r runs it")
        elif image_id:
            self._field(text, "host", "not loaded · l loads it")
        hits = done.cache_hits or state.cache_hits
        self._field(text, "cache", f"{hits}/{done.steps_total or total} steps from cache")
        if state.warnings:
            self._field(text, "warnings", str(len(state.warnings)))
        return text


class FailurePanel(_Panel):
    """The failed step, Buildah's message and the last lines of output, all at once."""

    COMPONENT_CLASSES = _Panel.COMPONENT_CLASSES | {"panel--error", "panel--tail"}

    tail: reactive[list[str]] = reactive(list, layout=True)
    """The last lines of output (at most ``TAIL_LINES`` are kept)."""
    shell: reactive[str] = reactive("", layout=True)
    """What a debug shell offers here ("s opens ...", or why there is none); "" says nothing."""

    def validate_tail(self, tail: list[str]) -> list[str]:
        return tail[-TAIL_LINES:]

    def render(self) -> Text:
        text = Text()
        state = self.state
        if state is None:
            return text
        failed_rows = [row for row in state.rows.values() if row.status == "failed"]
        row = failed_rows[-1] if failed_rows else None
        where = f" at step {row.step}/{row.steps} of stage {row.stage}/{row.stages}" if row else ""
        text.append(f"✗ Failed{where}", self.part("error"))
        failed = state.failed
        step = (failed.step if failed else "") or (row.instruction if row else "")
        if step:
            self._field(text, "step", step)
        refused = state.load_refused
        if refused is not None:  # built, pushed if asked, but not loaded: say it the TUI's way
            self._field(text, "error", f"not loaded: {refused.tag} on the host names image "
                                       f"{refused.host_image_id[:12]}, which buildcage did not "
                                       f"load there; l moves it (asks first)")
            return text
        message = failed.message if failed else "the build ended without saying why"
        self._field(text, "error", message)
        if failed is not None and failed.exit_code is not None:
            self._field(text, "exit", str(failed.exit_code))
        if self.shell:
            self._field(text, "shell", self.shell)
        text.append(f"\nlast {len(self.tail)} lines of output:", self.part("label"))
        for line in self.tail:
            text.append(f"\n  {visible(line)}", self.part("tail"))
        return text

