"""What a failed build leaves for a debug shell: which step failed, the command it ran, and the
layer the shell starts from.

``FailureLog`` is fed every event of a build (``Engine.recording``); when the build fails in a
step, the record (``DATA/debug/BUILD_ID.json``, 0600) says:

- the step (stage, step, the instruction as Buildah printed it) and, read from the
  Containerfile, the command to put in the shell's history, the context directories the RUN
  bind-mounted, the ARGs it saw, and what a shell does not reproduce (secret and cache mounts);
- the layer to start from: in a store kept after the build (``--layers``: host-ro, project,
  host-rw) the layer Buildah committed for the step before (``--> ID`` of that step), or for the
  first step after ``FROM`` the stage's base (an image, or an earlier stage's last layer). A
  fresh store keeps nothing: the debug session rebuilds (tui.engine.debug_shell).

The layer ids come from Buildah's output, which a RUN step can imitate: a forged ``--> ID`` can
only start the shell from another image of the same store, under the same isolation as the
build (it can do worse to that store anyway). The record never holds a --secret's path or value.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tui.engine.containerfile import (
    ContainerfileError,
    instructions,
    parse_arg_words,
    read_containerfile,
    substitute,
)
from tui.engine.errors import UserError
from tui.engine.events import CacheHit, Event, Failed, LogLine, StepDone, StepStarted
from tui.engine.plan import BuildPlan
from tui.engine.planner import secret_looking_args
from tui.engine.request import BuildRequest

RECORDS = "debug"
"""Directory of the records in buildcage's data directory."""
KEEP = 20
"""Records kept (the newest); older ones are removed when a new one is written."""
VERSION = 1
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LAYER_RE = re.compile(r"[0-9a-f]{6,64}")
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")


class DebugError(UserError):
    """No shell can be opened for this build (said why, and what to do instead)."""


@dataclass(frozen=True)
class FailedStep:
    """The failing step and what a shell needs to reproduce it."""

    stage: int
    stages: int
    step: int
    steps: int
    instruction: str
    """As Buildah printed it (``RUN ...``)."""
    command: str = ""
    """What the RUN ran, as one shell command (exec form joined); "" for other instructions."""
    binds: tuple[tuple[str, str], ...] = ()
    """``RUN --mount=type=bind`` of the context: (source inside the context, target)."""
    args: tuple[tuple[str, str | None], ...] = ()
    """The ARGs the step saw (its stage's, up to it) with their defaults."""
    notes: tuple[str, ...] = ()
    """What the shell does not give as the build did."""
    problem: str = ""
    """Why no shell can be opened here ("" when one can)."""

    @property
    def where(self) -> str:
        stage = f" of stage {self.stage}/{self.stages}" if self.stages > 1 else ""
        return f"step {self.step}/{self.steps}{stage}"


@dataclass(frozen=True)
class DebugRecord:
    """A failed build, as a debug shell needs it."""

    build_id: str
    time: float
    context: str
    containerfile: str
    profile: str
    project: str
    tag: str
    store: str
    """The profile's store kind then: "fresh" stores kept nothing (the session rebuilds)."""
    failed: FailedStep
    base: str = ""
    """The layer (short id) or image the shell starts from; "" in a fresh store."""
    layers: dict[str, str] = field(default_factory=dict)
    """``"stage:step"`` -> the layer Buildah named for it, every finished step."""
    build_args: tuple[tuple[str, str], ...] = ()
    target_stage: str = ""
    secret_ids: tuple[str, ...] = ()
    """Names of the build's --secret inputs (never their files): a rebuild needs them again."""
    withheld_args: tuple[str, ...] = ()
    """Names of its secret-looking build arguments (``planner.secret_looking_args``), whose
    values are not in ``build_args`` (no file under the data directory holds one): a session
    needs them again (``--build-arg``; the TUI passes the build's own)."""

    def request(self, secrets: tuple[tuple[str, str], ...] = (),
                withheld: tuple[tuple[str, str], ...] = ()) -> BuildRequest:
        """The same build, nothing pushed: what a debug session prepares; ``withheld``: the
        values of ``withheld_args`` given again."""
        return BuildRequest(context=Path(self.context), profile=self.profile,
                            containerfile=self.containerfile, tag=self.tag,
                            build_args=self.build_args + withheld, secrets=secrets,
                            target_stage=self.target_stage, project=self.project)

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = VERSION
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> DebugRecord:
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("version", None) != VERSION:
            raise ValueError("not a debug record of this buildcage")
        failed = data.pop("failed")
        step = FailedStep(**{**failed, "binds": tuple(tuple(b) for b in failed["binds"]),
                             "args": tuple(tuple(a) for a in failed["args"]),
                             "notes": tuple(failed["notes"])})
        return cls(**{**data, "failed": step,
                      "build_args": tuple(tuple(a) for a in data["build_args"]),
                      "secret_ids": tuple(data["secret_ids"]),
                      "withheld_args": tuple(data.get("withheld_args", ())),
                      "layers": {str(k): str(v) for k, v in data["layers"].items()}})


# -- reading the failing step from the Containerfile ---------------------------------------------
def _stages(text: str) -> tuple[list[Any], list[list[Any]]]:
    """(instructions before the first FROM, each stage's instructions, FROM first)."""
    head: list[Any] = []
    stages: list[list[Any]] = []
    for command in instructions(text):
        if command.cmd.upper() == "FROM":
            stages.append([command])
        elif stages:
            stages[-1].append(command)
        else:
            head.append(command)
    return head, stages


def _mount_options(flag: str) -> dict[str, str] | None:
    """``--mount=type=bind,source=x,target=/y,rw`` -> {"type": "bind", ...}; None if not one."""
    if not flag.startswith("--mount="):
        return None
    options: dict[str, str] = {}
    for part in flag.removeprefix("--mount=").split(","):
        key, eq, value = part.partition("=")
        options[key.strip().lower()] = value if eq else "true"
    options.setdefault("type", "bind")
    return options


def _context_path(source: str) -> str | None:
    """A bind source inside the context, normalized; None when it would leave it."""
    path = posixpath.normpath("/" + source).lstrip("/") or "."
    if ".." in path.split("/") or any(c in path for c in "\n\r\0:"):
        return None
    return path


def _target(target: str) -> str | None:
    if not target or any(c in target for c in "\n\r\0:") or ".." in target.split("/"):
        return None
    return posixpath.normpath(target)


def _run_parts(command: Any) -> tuple[str, list[tuple[str, str]], list[str]]:
    """A RUN's command line, its context bind mounts and what a shell leaves out."""
    binds: list[tuple[str, str]] = []
    notes: list[str] = []
    for flag in command.flags:
        options = _mount_options(flag)
        if options is None:
            if flag.startswith("--network"):
                notes.append(f"{flag}: the shell has no network")
            continue
        kind = options["type"]
        target = options.get("target") or options.get("dst") or options.get("destination", "")
        if kind == "secret":
            notes.append(f"secret {options.get('id', target)!r} is not given to the shell")
        elif kind == "bind" and "from" not in options:
            source = _context_path(options.get("source") or options.get("src") or ".")
            where = _target(target)
            if source is None or where is None:
                notes.append(f"bind mount {target!r} is not given (it leaves the context)")
            else:
                binds.append((source, where))
        else:
            notes.append(f"{kind} mount {target!r} is not given to the shell")
    if command.json:
        return shlex.join(command.value), binds, notes
    words = " ".join(command.value)
    for heredoc in command.heredocs:
        if words.strip() in (f"<<{heredoc.name}", f"<<-{heredoc.name}"):
            return heredoc.content, binds, notes  # the heredoc is the script the RUN ran
        notes.append(f"heredoc {heredoc.name} is not given to the shell")
    return words, binds, notes


def _stage_args(head: list[Any], stage: list[Any], before: int) -> list[tuple[str, str | None]]:
    """ARGs the stage declared before step ``before`` (1-based), with their defaults; a bare
    ``ARG NAME`` takes a global ARG's default."""
    globals_: dict[str, str | None] = {}
    for command in head:
        if command.cmd.upper() == "ARG":
            globals_.update(parse_arg_words(command.value))
    seen: dict[str, str | None] = {}
    for command in stage[1:before - 1]:
        if command.cmd.upper() != "ARG":
            continue
        for name, default in parse_arg_words(command.value).items():
            if _KEY_RE.fullmatch(name):
                seen[name] = default if default is not None else globals_.get(name)
    return list(seen.items())


def describe_failure(text: str, started: StepStarted) -> FailedStep:
    """The failing step, read from the Containerfile's text where the instruction there is the
    one Buildah ran (it may have been edited since); else from the printed instruction."""
    plain = FailedStep(started.stage, started.stages, started.step, started.steps,
                       started.instruction)
    if started.step <= 1:
        return _with(plain, problem=f"the build failed at {started.instruction!r}: there is no "
                                    "earlier state to open a shell in")
    command = None
    head: list[Any] = []
    stage: list[Any] = []
    with contextlib.suppress(ContainerfileError):
        head, stages = _stages(text)
        if started.stage <= len(stages) and started.step <= len(stages[started.stage - 1]):
            stage = stages[started.stage - 1]
            candidate = stage[started.step - 1]
            if _same_instruction(started.instruction, candidate.original):
                command = candidate
    if command is None:
        with contextlib.suppress(ContainerfileError):
            parsed = instructions(started.instruction)  # the printed line alone
            command = parsed[0] if len(parsed) == 1 else None
    if command is None or command.cmd.upper() != "RUN":
        kind = started.instruction.split(None, 1)[0] if started.instruction else "step"
        return _with(plain, notes=(f"the step is a {kind}, not a command: the context is in "
                                   "the shell, read-only",),
                     args=tuple(_stage_args(head, stage, started.step)) if stage else ())
    line, binds, notes = _run_parts(command)
    return _with(plain, command=line, binds=tuple(binds), notes=tuple(notes),
                 args=tuple(_stage_args(head, stage, started.step)) if stage else ())


def _same_instruction(printed: str, original: str) -> bool:
    """Whether Buildah's printed instruction is this one of the file: continuations joined,
    blanks collapsed; a heredoc's is printed as its first line."""
    def norm(text: str) -> str:
        return " ".join(text.replace("\\\n", " ").split())

    return norm(printed) in (norm(original), norm(original.split("\n", 1)[0]))


def _with(step: FailedStep, **changes: Any) -> FailedStep:
    return FailedStep(**{**asdict(step), **changes})


def base_image(text: str, stage: int, step: int, layers: dict[str, str],
               build_args: dict[str, str]) -> str:
    """The layer (or image) holding the state before ``step`` of ``stage``: the layer of the
    step before, or the stage's base; raises DebugError when the build never made it."""
    if step >= 3:
        layer = layers.get(f"{stage}:{step - 1}", "")
        if not _LAYER_RE.fullmatch(layer):
            raise DebugError(f"Buildah named no layer for step {step - 1} of stage {stage}: "
                             "nothing to start a shell from")
        return layer
    try:
        head, stages = _stages(text)
    except ContainerfileError as exc:
        raise DebugError(f"the Containerfile cannot be read any more: {exc}") from None
    values: dict[str, str] = {}
    for command in head:
        if command.cmd.upper() == "ARG":
            for name, default in parse_arg_words(command.value).items():
                value = build_args.get(name, None if default is None
                                       else substitute(default, values))
                if value is not None:
                    values[name] = value
    return _stage_base(stages, stage, values, layers, depth=0)


def _stage_base(stages: list[list[Any]], stage: int, values: dict[str, str],
                layers: dict[str, str], depth: int) -> str:
    if not 1 <= stage <= len(stages) or depth > len(stages):
        raise DebugError(f"the Containerfile has no stage {stage} any more")
    words = stages[stage - 1][0].value
    base = substitute(words[0], values) if words else ""
    names = {(c[0].value[2].lower() if len(c[0].value) == 3 else str(i)): i + 1
             for i, c in enumerate(stages[:stage - 1])}
    names.update({str(i): i + 1 for i in range(stage - 1)})
    earlier = names.get(base.lower())
    if earlier is not None:
        count = len(stages[earlier - 1])
        if count >= 2:
            layer = layers.get(f"{earlier}:{count}", "")
            if _LAYER_RE.fullmatch(layer):
                return layer
            raise DebugError(f"Buildah named no layer for the end of stage {earlier}")
        return _stage_base(stages, earlier, values, layers, depth + 1)
    if base.lower() in ("", "scratch"):
        raise DebugError("the stage starts FROM scratch: there is no shell in it")
    if not _IMAGE_RE.fullmatch(base):  # it goes to buildah's command line: never an option
        raise DebugError(f"the stage's base {base!r} is not an image reference")
    return base


class FailureLog:
    """Fed every event of a build: the layers Buildah named and the step that failed."""

    def __init__(self) -> None:
        self.layers: dict[str, str] = {}
        self.started: dict[str, StepStarted] = {}
        self.failed_at: StepStarted | None = None
        self._open: StepStarted | None = None
        self._failed = False

    def feed(self, event: Event) -> None:
        if type(event) is LogLine:
            return  # (most events: one test, on the runner's thread)
        if isinstance(event, StepStarted):
            self._open = event
            self.started[f"{event.stage}:{event.step}"] = event
        elif isinstance(event, CacheHit | StepDone):
            if event.layer_id:
                self.layers[f"{event.stage}:{event.step}"] = event.layer_id
            if isinstance(event, StepDone):
                self._open = None
        elif isinstance(event, Failed) and not self._failed:
            self._failed = True
            self.failed_at = self._open  # None: the build failed outside a step

    def record(self, plan: BuildPlan, now: float | None = None) -> DebugRecord | None:
        """The record of a build that failed in a step; None otherwise."""
        if self.failed_at is None:
            return None
        try:
            text = read_containerfile(plan.containerfile)
        except ContainerfileError:
            text = ""
        failed = describe_failure(text, self.failed_at)
        base = ""
        if not failed.problem and plan.profile.store != "fresh":
            try:
                base = base_image(text, failed.stage, failed.step, self.layers,
                                  dict(plan.build_args))
            except DebugError as exc:
                failed = _with(failed, problem=str(exc))
        withheld = secret_looking_args(plan.build_args)
        return DebugRecord(
            build_id=plan.build_id, time=time.time() if now is None else now,
            context=str(plan.context), containerfile=str(plan.containerfile),
            profile=plan.profile.name, project=plan.project, tag=plan.tag,
            store=plan.profile.store, failed=failed, base=base, layers=dict(self.layers),
            build_args=tuple((k, v) for k, v in plan.build_args if k not in withheld),
            withheld_args=tuple(withheld), target_stage=plan.target_stage,
            secret_ids=tuple(name for name, _src in plan.secrets))


# -- records on disk -------------------------------------------------------------------------------
def records_dir(data: Path) -> Path:
    return data / RECORDS


def save_record(record: DebugRecord, data: Path) -> Path:
    """Writes the record (0600, in a 0700 directory) and keeps only the newest ``KEEP``."""
    from tui.engine.config import private_dir

    folder = private_dir(records_dir(data))
    path = folder / f"{record.build_id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(record.to_json())
    for old in load_records(data)[KEEP:]:
        (folder / f"{old.build_id}.json").unlink(missing_ok=True)
    return path


def load_records(data: Path) -> list[DebugRecord]:
    """Every readable record, newest first (an unreadable one is skipped)."""
    out = []
    folder = records_dir(data)
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            out.append(DebugRecord.from_json(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
    return sorted(out, key=lambda r: r.time, reverse=True)


def find_record(data: Path, *, build_id: str = "", context: Path | None = None) -> DebugRecord:
    """The record of ``build_id``, else the newest of ``context``, else the newest; raises
    DebugError saying there is none."""
    records = load_records(data)
    if build_id:
        records = [r for r in records if r.build_id == build_id]
        where = f"build {build_id}"
    elif context is not None:
        wanted = str(context.expanduser().resolve())
        records = [r for r in records if r.context == wanted]
        where = f"a build of {wanted}"
    else:
        where = "a build"
    if not records:
        raise DebugError(f"no record of {where} that failed in a step (buildcage keeps the "
                         f"last {KEEP} failures); build it, and when a RUN fails, debug it")
    return records[0]
