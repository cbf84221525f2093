"""How the headless CLI prints build events: human-readable lines or one JSON object per event."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from tui.engine.events import (
    BuildStarted,
    CacheHit,
    Done,
    Event,
    Failed,
    ImageInfo,
    LogLine,
    PullStarted,
    Pushed,
    PushStarted,
    StepDone,
    StepStarted,
)
from tui.engine.events import Warning as BuildWarning
from tui.engine.text import visible


class JsonPrinter:
    """One JSON object per line per event; ``event`` and ``time`` in every one."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        self.out.write(event.to_json() + "\n")
        if not isinstance(event, LogLine):
            self.out.flush()

    def error(self, message: str) -> None:
        """A build that never started still ends with a ``done`` object, as every build does."""
        self.out.write(json.dumps({"event": "error", "time": time.time(), "message": message}))
        self.out.write("\n")
        self(Done(status="failed"))


class HumanPrinter:
    """Buildah's own lines, indented, with buildcage's reading of them in between. Control
    characters in them are written out as text (a RUN step must not drive the terminal)."""

    def __init__(self, out: TextIO = sys.stdout, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.steps: dict[tuple[int, int], str] = {}

    def __call__(self, event: Event) -> None:
        line = self.render(event)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def render(self, event: Event) -> str | None:
        line = self._render(event)
        return None if line is None else visible(line)

    def _render(self, event: Event) -> str | None:
        if isinstance(event, LogLine):
            return None if self.quiet else f"    {event.line}"
        if isinstance(event, BuildStarted):
            return (f"buildcage: building {event.context} with profile {event.profile}"
                    f" -> {event.tag}")
        if isinstance(event, StepStarted):
            self.steps[(event.stage, event.step)] = event.instruction
            where = f"[{event.stage}/{event.stages}] " if event.stages > 1 else ""
            return f"==> {where}step {event.step}/{event.steps}: {event.instruction}"
        if isinstance(event, CacheHit):
            return f"    cache hit {event.layer_id}"
        if isinstance(event, StepDone) and event.layer_id:
            how = "cached" if event.cached else f"{event.duration_s:.1f}s"
            return f"    done {event.layer_id} ({how})"
        if isinstance(event, PullStarted):
            return f"==> pulling {event.ref}"
        if isinstance(event, PushStarted):
            return f"==> pushing to {event.ref}"
        if isinstance(event, Pushed):
            return f"==> pushed {event.ref}@{event.digest}"
        if isinstance(event, ImageInfo):
            return f"==> image: {len(event.layers)} layers, {event.size} bytes"
        if isinstance(event, BuildWarning):
            return f"warning: {event.message}"
        if isinstance(event, Failed):
            at = f" at {event.step!r}" if event.step else ""
            return f"FAILED{at}: {event.message}"
        if isinstance(event, Done):
            parts = [f"{event.status} in {event.duration_s:.1f}s",
                     f"{event.cache_hits}/{event.steps_total} steps cached"]
            if event.image_id:
                parts.append(f"image {event.image_id[:12]}")
            if event.pushed:
                parts.append(f"pushed {event.pushed}")
            return "buildcage: " + ", ".join(parts)
        return None

    def error(self, message: str) -> None:
        print(f"buildcage: error: {visible(message)}", file=sys.stderr)
