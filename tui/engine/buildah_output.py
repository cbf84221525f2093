"""Turn Buildah 1.28's text output (``buildah bud --layers``, not a terminal) into typed events.

Pure: no I/O, no UI, no podman. Feed it one line at a time with the time the line arrived; every
line becomes a ``LogLine`` first, then whatever typed events it means.

Conventions worth knowing:

* Layer ids (``CacheHit.layer_id``, ``StepDone.layer_id``) are always Buildah's short 11-hex id,
  the form ``--> abc`` prints, so both events of one cached step carry the same id.
* Buildah prints the last step's ``--> id`` after ``COMMIT``, so that step's ``StepDone`` comes
  after ``Committed``. A step Buildah never prints ``-->`` for (a ``FROM``) is closed with
  ``layer_id=""`` by the next step, by ``Successfully tagged``/the image id, or by ``finish``.
* ``level=error`` lines are not failures by themselves (Buildah logs some and goes on); the last
  one is the message of the ``Failed`` that ``finish`` makes for a non-zero exit with no ``Error:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tui.engine.events import (
    BlobCopied,
    BuildWarning,
    CacheHit,
    Committed,
    ConfigCopied,
    Event,
    Failed,
    LogLine,
    ManifestWritten,
    PullStarted,
    StepDone,
    StepStarted,
    Tagged,
    made,
)

Phase = Literal["pull", "push"]

SHORT_ID_LEN = 11  # what Buildah prints in `--> abc`
_STEP_RE = re.compile(r"(?:\[(\d+)/(\d+)\] )?STEP (\d+)/(\d+): (.*)")
_COMMIT_RE = re.compile(r"(?:\[\d+/\d+\] )?COMMIT(?: (.*))?")
# Only a hex id counts: a RUN step may well print "--> installing..." itself.
_ARROW_RE = re.compile(r"--> (Using cache )?([0-9a-f]{6,64})\s*")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_GLUED_RE = re.compile(
    r"(?:\[\d+/\d+\] )?(?:STEP \d+/\d+: .*|COMMIT(?: \S+)?)$"
    r"|--> (?:Using cache [0-9a-f]{64}|[0-9a-f]{11})$"
)
_LOGRUS_RE = re.compile(r'level=(\w+) msg=("(?:[^"\\]|\\.)*"|\S*)')
_TTY_LOG_RE = re.compile(r"(WARN|ERRO|FATA)\[\d+\] ?(.*)")
_STEP_ERR_RE = re.compile(r'(.*?)": (.*)', re.DOTALL)
_EXIT_RE = re.compile(r"exit status (\d+)\s*$")
_ESCAPE_RE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_BUILDING = 'Error: building at STEP "'
# First characters of every line we interpret: the rest (RUN output) costs one set lookup.
_FIRST_CHARS = frozenset("[SC-ETWtl")


def _unquote(value: str) -> str:
    """Undo logrus' Go-style quoting of ``msg="..."``."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m[1], m[1]), value[1:-1])
    return value


def _exit_status(text: str) -> int | None:
    match = _EXIT_RE.search(text)
    return int(match[1]) if match else None


@dataclass
class _Step:
    """The open step: started, neither done nor failed yet."""

    stage: int
    step: int
    instruction: str
    start: float
    cached: bool = False


class BuildahOutputParser:
    """Stateful line parser; read ``steps_total``, ``cache_hits`` and ``failed`` at any time.

    It makes step, cache, pull/push progress and log events: what the output can tell. Facts
    (image id, layer sizes, a pushed digest) never come from here: any RUN step can print any
    line, so the runner reads them from files the trusted publish phase wrote."""

    def __init__(self) -> None:
        self.steps_total: int = 0  # STEP lines seen, all stages
        self.cache_hits: int = 0
        self.failed: Failed | None = None
        self.phase: Phase = "pull"
        """Whether blob lines belong to a pull or a push: the runner says, per container."""
        self._step: _Step | None = None
        self._committing = False  # COMMIT seen: the next `--> id` belongs to the open last step
        self._blobs: set[str] = set()  # reported in this pull/push: redraws repeat a blob
        self._last_error = ""

    def feed(self, line: str, now: float) -> list[Event]:
        """Parse one raw line (without its newline) that arrived at ``now``."""
        out: list[Event] = [LogLine.of(line, now)]
        self._parse(line, now, out)
        return out

    def feed_all(self, lines: Iterable[str], now: float) -> list[Event]:
        """Every line of one read (they arrived together, at ``now``), in order: ``feed`` for
        each, in one list. The runner's path: a log read hands over every line written since
        the last, thousands in a flood, and a call, a list and a clock read per line were a
        tenth of the parser's time."""
        out: list[Event] = []
        append, parse, log_line = out.append, self._parse, LogLine.of
        for line in lines:
            append(log_line(line, now))
            parse(line, now, out)
        return out

    def _parse(self, line: str, now: float, out: list[Event]) -> None:
        """Appends the line's events to ``out``: every helper below does, so a line costs one
        list (the parser's list per call and per helper were a fifth of its time, profiled)."""
        if len(line) == 64 and _HEX64_RE.fullmatch(line):
            # Buildah prints the image id last: it closes the last step. It is not taken as
            # the image's id (a RUN step can print such a line too): that comes out of band.
            if self._step is not None and self._committing:
                self._close(now, "", out)
            return
        if not line or line[0] not in _FIRST_CHARS:
            glued = self._glued(line)
            if glued:
                self._parse(line[glued:], now, out)
            return
        if line.startswith("--> "):
            self._arrow(line, now, out)
        elif line.startswith(("STEP ", "[", "COMMIT")):
            self._step_or_commit(line, now, out)
        elif line.startswith("Error: "):
            self._error(line, now, out)
        elif line.startswith("Successfully tagged "):
            self._close(now, "", out)
            out.append(Tagged(image=line[20:].strip(), time=now))
        elif line.startswith("Copying blob "):
            parts = line[13:].split(None, 1)
            if parts and parts[0] not in self._blobs:
                self._blobs.add(parts[0])
                skipped = len(parts) > 1 and "skipped" in parts[1]
                out.append(BlobCopied(digest=parts[0], phase=self.phase, skipped=skipped,
                                      time=now))
        elif line.startswith("Copying config "):
            words = line[15:].split(None, 1)
            digest = words[0] if words else ""
            out.append(ConfigCopied(digest=digest, phase=self.phase, time=now))
        elif line.startswith("Writing manifest"):
            out.append(ManifestWritten(phase=self.phase, time=now))
        elif line.startswith("Trying to pull "):
            self._blobs.clear()
            out.append(PullStarted(ref=line[15:].strip().removesuffix("..."), time=now))
        elif line.startswith(("time=", "level=")):
            match = _LOGRUS_RE.search(line)
            if match:
                self._log(match[1], _unquote(match[2]), now, out)
        elif line.startswith(("WARN[", "ERRO[", "FATA[")):
            match = _TTY_LOG_RE.match(line)
            if match:
                level = "warning" if match[1] == "WARN" else "error"
                self._log(level, match[2], now, out)

    def begin_push(self) -> None:
        """What follows is a push's output (the runner's publish phase): blobs count anew."""
        self.phase = "push"
        self._blobs.clear()

    def finish(self, exit_code: int, now: float) -> list[Event]:
        """The process ended: close the open step, or report the failure nobody printed."""
        out: list[Event] = []
        if exit_code == 0:
            self._close(now, "", out)
            return out
        step = self._step.instruction if self._step else ""
        self._step = None  # a failed build's open step did not finish
        if self.failed is not None:
            return out
        message = self._last_error or f"exit status {exit_code}"
        code = _exit_status(self._last_error)
        self._fail(message, step, exit_code if code is None else code, now, out)
        return out

    def _close(self, now: float, layer_id: str, out: list[Event]) -> None:
        step, self._step, self._committing = self._step, None, False
        if step is None:
            return
        duration = now - step.start
        out.append(made(StepDone, stage=step.stage, step=step.step, layer_id=layer_id,
                        duration_s=duration if duration > 0.0 else 0.0, cached=step.cached,
                        time=now))

    def _step_or_commit(self, line: str, now: float, out: list[Event]) -> None:
        match = _STEP_RE.fullmatch(line)
        if match is None:
            commit = _COMMIT_RE.fullmatch(line)
            if commit is None:
                return
            self._committing = True  # keep the last step open for the `--> id` that follows
            out.append(Committed(image=(commit[1] or "").strip(), time=now))
            return
        self._close(now, "", out)
        stage_text, stages_text, step_text, steps_text, instruction = match.groups()
        stage = int(stage_text) if stage_text else 1
        step = int(step_text)
        self.steps_total += 1
        self._step = _Step(stage, step, instruction, now)
        out.append(made(StepStarted, stage=stage, stages=int(stages_text) if stages_text else 1,
                        step=step, steps=int(steps_text), instruction=instruction, time=now))

    def _arrow(self, line: str, now: float, out: list[Event]) -> None:
        match = _ARROW_RE.fullmatch(line)
        if match is None or self._step is None:
            return
        layer_id = match[2][:SHORT_ID_LEN]
        if match[1] is None:
            self._close(now, layer_id, out)
            return
        if self._step.cached:
            return
        self._step.cached = True
        self.cache_hits += 1
        out.append(made(CacheHit, stage=self._step.stage, step=self._step.step,
                        layer_id=layer_id, time=now))

    def _error(self, line: str, now: float, out: list[Event]) -> None:
        step = self._step.instruction if self._step else ""
        message = line[7:]
        if line.startswith(_BUILDING):
            body = line[len(_BUILDING):]
            # The instruction may itself hold `": `; trust the open step's text when it matches.
            if step and body.startswith(step + '": '):
                message = body[len(step) + 3:]
            elif match := _STEP_ERR_RE.fullmatch(body):
                step, message = match[1].strip(), match[2]
        self._step, self._committing = None, False  # a failed step gets no StepDone
        self._fail(message, step, _exit_status(message), now, out)

    def _fail(self, message: str, step: str, exit_code: int | None, now: float,
              out: list[Event]) -> None:
        if self.failed is not None:  # keep the first: later errors are consequences
            return
        self.failed = Failed(message=message, step=step, exit_code=exit_code, time=now)
        out.append(self.failed)

    def _glued(self, line: str) -> int:
        """Where a Buildah line starts inside a line of RUN output, or 0.

        A RUN whose output does not end with a newline (or whose last pipe-full Buildah drops,
        as 1.28 and 1.39 do under CPU load) gets Buildah's next line glued to it:
        ``991COMMIT localhost/app:latest``. Cheap substring tests first: this runs per line.
        """
        if self._step is None or not ("STEP " in line or "COMMIT" in line or "--> " in line):
            return 0
        match = _GLUED_RE.search(line, 1)
        return match.start() if match else 0

    def _log(self, level: str, message: str, now: float, out: list[Event]) -> None:
        if level in ("warning", "warn"):
            out.append(BuildWarning(message=message, time=now))
        elif level in ("error", "fatal", "panic"):
            self._last_error = message


def parse_lines(
    lines: Iterable[str], exit_code: int = 0, start: float = 0.0, step_s: float = 0.0
) -> list[Event]:
    """Parse a whole log (for tests and replay): line i arrives at ``start + i * step_s``.

    A trailing newline on a line is dropped, so a file object can be passed as it is.
    """
    parser = BuildahOutputParser()
    events: list[Event] = []
    count = 0
    for count, line in enumerate(lines, 1):
        events += parser.feed(line.removesuffix("\n"), start + (count - 1) * step_s)
    events += parser.finish(exit_code, start + count * step_s)
    return events
