"""End-of-build panels: the result (image, size, layers, push, cache, time) and the failure."""

from __future__ import annotations

import humanize
from rich.text import Text
from textual.widget import Widget

from tui.engine.text import visible
from tui.state.build_state import BuildState

TAIL_LINES = 15


def size(value: int) -> str:
    return humanize.naturalsize(value)


class _Panel(Widget):
    COMPONENT_CLASSES = {"panel--title", "panel--label", "panel--muted"}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.state: BuildState | None = None

    def _style(self, name: str):  # noqa: ANN202 - a rich Style
        return self.get_component_rich_style(f"panel--{name}")

    def _field(self, text: Text, label: str, value: str) -> None:
        text.append(f"\n{label:<9}", self._style("label"))
        text.append(visible(value))  # build-derived: shown, never obeyed


class ResultPanel(_Panel):
    """What was built (or how far a canceled build got)."""

    def show(self, state: BuildState) -> None:
        self.state = state
        self.display = True
        self.refresh(layout=True)

    def render(self) -> Text:
        text = Text()
        state = self.state
        if state is None or state.done is None:
            return text
        done = state.done
        finished, total = state.steps_finished, max(done.steps_total, len(state.rows))
        if done.status == "canceled":
            text.append("■ Canceled", self._style("title"))
            text.append(f" after {done.duration_s:.1f}s · {finished}/{total} steps finished")
            text.append("\n  the builder container was stopped and removed", self._style("muted"))
            return text
        image_id = done.image_id or state.image_id
        text.append(f"✓ Built {visible(image_id[:12]) or 'image'}", self._style("title"))
        text.append(f" in {done.duration_s:.1f}s")
        info = state.image_info
        if info is not None:
            layers = ", ".join(size(layer) for layer in info.layers)
            count = len(info.layers)
            self._field(text, "size", f"{size(info.size)} in {count} layer{'s' * (count != 1)}")
            self._field(text, "layers", layers)
        if state.pushed:
            for pushed in state.pushed:
                self._field(text, "pushed", pushed.ref)
                self._field(text, "digest", pushed.digest)
        elif done.pushed:
            self._field(text, "pushed", done.pushed)
        else:
            self._field(text, "pushed", "no push")
        hits = done.cache_hits or state.cache_hits
        self._field(text, "cache", f"{hits}/{done.steps_total or total} steps from cache")
        if state.warnings:
            self._field(text, "warnings", str(len(state.warnings)))
        return text


class FailurePanel(_Panel):
    """The failed step, Buildah's message and the last lines of output, all at once."""

    COMPONENT_CLASSES = _Panel.COMPONENT_CLASSES | {"panel--error", "panel--tail"}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.tail: list[str] = []

    def show(self, state: BuildState, tail: list[str]) -> None:
        self.state, self.tail = state, tail[-TAIL_LINES:]
        self.display = True
        self.refresh(layout=True)

    def render(self) -> Text:
        text = Text()
        state = self.state
        if state is None:
            return text
        failed_rows = [row for row in state.rows.values() if row.status == "failed"]
        row = failed_rows[-1] if failed_rows else None
        where = f" at step {row.step}/{row.steps} of stage {row.stage}/{row.stages}" if row else ""
        text.append(f"✗ Failed{where}", self._style("error"))
        failed = state.failed
        step = (failed.step if failed else "") or (row.instruction if row else "")
        if step:
            self._field(text, "step", step)
        message = failed.message if failed else "the build ended without saying why"
        self._field(text, "error", message)
        if failed is not None and failed.exit_code is not None:
            self._field(text, "exit", str(failed.exit_code))
        text.append(f"\nlast {len(self.tail)} lines of output:", self._style("label"))
        for line in self.tail:
            text.append(f"\n  {visible(line)}", self._style("tail"))
        return text

