"""How the headless CLI prints build events: human-readable lines or one JSON object per event."""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

from tui.engine.events import (
    BuildStarted,
    BuildWarning,
    CacheExported,
    CacheHit,
    CacheMiss,
    Done,
    Event,
    Failed,
    ImageInfo,
    ImageLoaded,
    LoadRefused,
    LogLine,
    PullStarted,
    Pushed,
    PushStarted,
    StepDone,
    StepStarted,
    Unchanged,
)
from tui.engine.text import visible
from tui.state.build_state import BuildState

if TYPE_CHECKING:
    from tui.engine.cache_why import WhyReport


def stdout_gone() -> None:
    """stdout's reader has gone (``| head``): send what is still buffered, and anything later,
    to /dev/null, so that nothing fails again when the interpreter flushes at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _Output:
    """Writes to ``out`` until its reader goes away (``buildcage build | head``): from then on
    nothing more is written, and the build goes on to its end and its clean-up."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.gone = False

    def write(self, text: str, flush: bool = True) -> None:
        if self.gone:
            return
        try:
            self.out.write(text)
            if flush:
                self.out.flush()
        except BrokenPipeError:
            self.gone = True
            if self.out is sys.stdout:
                stdout_gone()


class JsonPrinter(_Output):
    """One JSON object per line per event; ``event`` and ``time`` in every one. json.dumps
    escapes every control character (ensure_ascii), so no escape reaches a terminal."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        super().__init__(out)

    def __call__(self, event: Event) -> None:
        self.write(event.to_json() + "\n", flush=not isinstance(event, LogLine))

    def error(self, message: str) -> None:
        """A build that never started still ends with a ``done`` object, as every build does."""
        self.write(json.dumps({"event": "error", "time": time.time(), "message": message})
                   + "\n")
        self(Done(status="failed"))


class HumanPrinter(_Output):
    """Buildah's own lines, indented, with buildcage's reading of them in between. Control
    characters in them are written out as text (a RUN step must not drive the terminal)."""

    def __init__(self, out: TextIO = sys.stdout, quiet: bool = False) -> None:
        super().__init__(out)
        self.quiet = quiet
        self.state = BuildState()
        """The build as the TUI's build screen folds it (steps, transfers, warnings)."""

    def __call__(self, event: Event) -> None:
        self.state.apply(event)
        line = self.render(event)
        if line is not None:
            self.write(line + "\n")

    def render(self, event: Event) -> str | None:
        line = self._render(event)
        return None if line is None else visible(line)

    def _render(self, event: Event) -> str | None:
        if isinstance(event, LogLine):
            return None if self.quiet else f"    {event.line}"
        if isinstance(event, BuildStarted):
            return (f"buildcage: building {event.context} with profile {event.profile}"
                    f" -> {event.tag}")
        if isinstance(event, Unchanged):
            return (f"==> unchanged since build #{event.build}: image {event.image_id[:12]} "
                    f"is the result; no container ran")
        if isinstance(event, StepStarted):
            where = f"[{event.stage}/{event.stages}] " if event.stages > 1 else ""
            return f"==> {where}step {event.step}/{event.steps}: {event.instruction}"
        if isinstance(event, CacheHit):
            return f"    cache hit {event.layer_id}"
        if isinstance(event, CacheMiss):
            reasons = "; ".join(reason.full() for reason in event.reasons)
            return f"    why {event.stage}:{event.step} ran: {reasons}"
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
            overlay = {"kernel": ", the kernel's overlay", "fuse": ", fuse-overlayfs"}.get(
                event.overlay, "")
            return f"==> image: {len(event.layers)} layers, {event.size} bytes{overlay}"
        if isinstance(event, ImageLoaded):
            return (f"==> loaded into the host's podman as {event.tag} (image "
                    f"{event.image_id[:12]})\n    run it: podman run --rm -it {event.tag}")
        if isinstance(event, LoadRefused):
            return (f"==> not loaded: {event.tag} on the host names image "
                    f"{event.host_image_id[:12]}, not this build's {event.image_id[:12]}")
        if isinstance(event, CacheExported):
            if event.error:
                return f"warning: registry cache {event.repo} not updated: {event.error}"
            return (f"==> registry cache {event.repo}: {event.images} images "
                    f"({event.pushed} pushed)")
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
            if event.loaded:
                parts.append(f"loaded as {event.loaded}")
            return "buildcage: " + ", ".join(parts)
        return None

    def error(self, message: str) -> None:
        print(f"buildcage: error: {visible(message)}", file=sys.stderr)


def print_why(report: WhyReport, out: TextIO | None = None) -> None:
    """``buildcage why``: the build, then each step with what happened to it and, for the
    steps that ran, why. Everything from history is shown escaped (``visible``)."""
    from tui.engine.cache_why import OUTCOMES, store_label

    out = out or sys.stdout
    b = report.build
    when = datetime.datetime.fromtimestamp(b.started_at).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"build #{b.id} of {b.context}", f"  {when} · profile {b.profile} · {b.status}"
             f" · {b.cache_hits}/{b.steps_total} steps cached"
             + (" · --no-cache" if b.no_cache else "")]
    if b.store:
        lines.append(f"  cache: {store_label(b.store)}")
    if b.unchanged:
        lines.append("  unchanged: nothing changed since the build before it in this store; "
                     "no container ran")
    if not report.recorded:
        lines.append("  (recorded before buildcage explained cache misses: no reasons kept)")
    for step in report.steps:
        outcome = OUTCOMES.get(step.outcome, step.outcome)
        lines.append(f"  {step.stage}:{step.step:<3} {outcome:8} {step.instruction}")
        for reason in step.reasons:
            lines.append(f"        why: {reason.full()}")
    out.write("".join(visible(line) + "\n" for line in lines))
