"""A shell where a build failed: an interactive shell in a working container made from the last
layer that succeeded, under the build phase's isolation.

How it is made: one container of the plan's ``debug`` phase (``BuildPlan.debug_phase``: the
build phase's store, context, user namespace, capabilities and network, which is none; none of
its secrets) runs ``buildah from`` the layer, then ``buildah run`` a shell in it, on this
terminal: ``podman run -it``, rendered from the plan like every other container
(``renderings.podman_run_argv``), because podman-py cannot attach. Inside the shell the working
directory and user are the step's (the image config's), the ARGs the step saw are set, the
context is read-only at ``/buildcage/context`` (not over the working directory: that would hide
the files earlier COPY steps put there, which are the state you came to see) and at the
targets of the RUN's own context bind mounts, and the failed command is in ``$HISTFILE`` and
typed at the first prompt.

Where the layer comes from: a store kept after the build (host-ro, project, host-rw build with
``--layers``) holds the layer Buildah committed for the step before (tui.engine.debug_record).
A fresh store (isolated) was removed with the build and committed only once (``--layers=false``):
the session rebuilds the same request with ``--layers`` into a new fresh volume that lives as
long as the session, in the same user namespace range (held by a created container), and opens
the shell before the step where that rebuild failed. That costs one more build.

Clean-up: ``close()`` removes the shell's container, its working container from a kept store
(by its exact name, with a short-lived container on the same mounts: ``buildah rm``), the fresh
volume, the secrets, the per-build files and the range holder; everything is labelled with the
build and its owner, so ``buildcage gc`` collects it after a SIGKILL (the working container's
name ends in ``-working-container``, which the store sweep takes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from podman.errors import NotFound

from tui.engine.containerfile import read_containerfile, substitute
from tui.engine.containers import remove_container, run_once
from tui.engine.debug_record import (
    DebugError,
    DebugRecord,
    FailedStep,
    FailureLog,
    base_image,
    describe_failure,
)
from tui.engine.events import Event, Failed
from tui.engine.orphans import claim_store, owned
from tui.engine.paths import check_own_path, open_lock, store_lock_path
from tui.engine.plan import CONTEXT_DIR, DEBUG_DIR, BuildPlan
from tui.engine.renderings import create_kwargs, holder_kwargs, podman_run_argv
from tui.engine.signals import take_over
from tui.engine.stores import HostState, podman_secrets, prepare, release, store_root
from tui.engine.terminal import READY, run_on_terminal
from tui.engine.text import visible

SHELL_CONTEXT = "/buildcage/context"
"""Where the shell sees the build context, read-only."""
HISTORY, COMMAND, ARGS, BANNER = "history", "command", "args.env", "banner"


class DebugCanceled(Exception):
    """The session was canceled (a signal) before its shell opened."""


# -- what runs in the shell's container ------------------------------------------------------
def working_name(plan: BuildPlan) -> str:
    """The working container's name: the build's, and ending like Buildah's own, so a store
    sweep after a SIGKILL takes it (tui.engine.orphans)."""
    return f"{plan.container_name}-debug-working-container"


def inner_command(tty: bool) -> str:
    """The shell, started in the working container: the step's ARGs, the history file; bash
    when the image has it (it reads ``$HISTFILE``), else its /bin/sh."""
    ready = "printf '\\033]0;buildcage debug\\007'; " if tty else ""
    shell = ("if [ -x /bin/bash ]; then exec /bin/bash -i; fi; exec /bin/sh -i" if tty
             else "exec /bin/sh")
    return (f"set -a; . {DEBUG_DIR}/{ARGS}; set +a; HISTFILE={DEBUG_DIR}/{HISTORY}; "
            f"export HISTFILE; {ready}{shell}")


def shell_script(plan: BuildPlan, base: str, binds: tuple[tuple[str, str], ...],
                 tty: bool) -> list[str]:
    """The debug phase's command: the working container from ``base``, the shell in it, the
    working container removed when the shell ends (or the container is told to stop)."""
    volumes = [f"{DEBUG_DIR}:{DEBUG_DIR}", f"{CONTEXT_DIR}:{SHELL_CONTEXT}:ro"]
    run = ["buildah", "run", *(["-t"] if tty else [])]
    words = [shlex.join(run)]
    words += [f"-v {shlex.quote(v)}" for v in volumes]
    relative = False
    for source, target in binds:
        src = shlex.quote(f"{CONTEXT_DIR}/{source}:")
        if target.startswith("/"):
            words.append(f"-v {src}{shlex.quote(target + ':ro')}")
        else:  # relative to the step's working directory, as Buildah reads it
            relative = True
            words.append(f'-v {src}"${{WD%/}}"/{shlex.quote(target + ":ro")}')
    words += ['"$W"', "--", "/bin/sh", "-c", shlex.quote(inner_command(tty))]
    lines = [
        f"W={shlex.quote(working_name(plan))}",
        "trap 'buildah rm \"$W\" >/dev/null 2>&1' EXIT",
        "trap 'exit 129' HUP",
        "trap 'exit 143' TERM",
        f"buildah from --pull=never --quiet --name \"$W\" {shlex.quote(base)} >/dev/null || "
        f"{{ echo 'buildcage: {base} is not in the store any more: build again, then debug' >&2;"
        " exit 125; }",
    ]
    if relative:
        lines.append("WD=$(buildah inspect --type container --format "
                     "'{{.OCIv1.Config.WorkingDir}}' \"$W\")")
    lines.append(f"cat {DEBUG_DIR}/{BANNER}")
    lines.append(" ".join(words))
    return ["sh", "-ec", "\n".join(lines)]


def arg_env(step: FailedStep, build_args: dict[str, str]) -> str:
    """``NAME='value'`` lines of the ARGs the step saw (given values, else defaults)."""
    values: dict[str, str] = {}
    for name, default in step.args:
        value = build_args.get(name, None if default is None else substitute(default, values))
        if value is not None:
            values[name] = value
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def typable(command: str) -> bool:
    """One line of printable text: what may go into the history and be typed at the prompt
    (the Containerfile's text; a control character there could drive the terminal)."""
    return bool(command) and command.isprintable() and not _bidi(command)


def _bidi(text: str) -> bool:
    return any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in text)


def banner(record: DebugRecord, step: FailedStep, base: str, *, rebuilt: bool,
           tty: bool) -> str:
    """What the terminal shows before the shell (every build-derived word made visible)."""
    short = base[:12] if re.fullmatch(r"[0-9a-f]{11,64}", base) else base
    how = "rebuilt in a fresh store, " if rebuilt else ""
    lines = [f"buildcage debug: build {record.build_id} ({record.profile}) failed at "
             f"{step.where}",
             f"  {step.instruction}",
             f"  this shell: the state before that step ({how}{short}), network none"]
    if typable(step.command) and tty:
        lines += ["  the failed command is typed at the prompt: Enter re-runs it, or edit it",
                  f"  first; it is in the history (Up) and in {DEBUG_DIR}/{COMMAND}"]
    elif typable(step.command):
        lines.append(f"  the failed command is in $HISTFILE and in {DEBUG_DIR}/{COMMAND}")
    elif step.command:
        lines.append(f"  the failed command is in {DEBUG_DIR}/{COMMAND} "
                     f"(sh {DEBUG_DIR}/{COMMAND} runs it)")
    lines += [f"  the context, read-only: {SHELL_CONTEXT}",
              "  exit (or Ctrl-D) ends the shell; its container is removed"]
    for note in step.notes:
        lines.append(f"  not here: {note}")
    return "".join(visible(line) + "\n" for line in lines)


# -- the session ---------------------------------------------------------------------------
class DebugSession:
    """One shell for one failed build: ``prepare()`` (blocking: podman, maybe a rebuild),
    ``run_shell()`` (on this terminal), ``close()`` (always; safe to call twice); ``cancel()``
    from any thread, or a signal."""

    def __init__(self, client: Any, plan: BuildPlan, record: DebugRecord, *, podman_url: str,
                 on_event: Callable[[Event], None] | None = None,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.plan = owned(plan)
        self.record = record
        self.failed = record.failed
        self.base = record.base
        self.podman_url = podman_url
        self.on_event = on_event or (lambda event: None)
        self.on_note = on_note or (lambda note: None)
        self.rebuild_s: float | None = None
        """How long the rebuild took (a fresh store), None without one."""
        self.state: HostState | None = None
        self.idmap: dict[str, list[str]] | None = None
        self._holder: Any = None
        self._lock: Any = None
        self._runner: Any = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()

    @property
    def canceled(self) -> bool:
        return self._stop.is_set()

    @property
    def rebuilds(self) -> bool:
        """Whether the session must rebuild to have the layers (nothing kept them)."""
        return not self.base

    def cancel(self) -> None:
        """Ends the rebuild or the shell (the clean-up is ``close``'s). Thread-safe."""
        self._stop.set()
        runner = self._runner
        if runner is not None:
            runner.cancel()

    # -- prepare ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything the shell needs; on failure (or a cancel) what was made is removed and
        the error raised (DebugError, DebugCanceled, or podman's)."""
        try:
            self._hold_userns()
            self._take_store()
            if self.canceled:
                raise DebugCanceled
            # No podman secrets unless a rebuild reads them: the shell gets none (not the
            # build arguments, which go in a private file; not the registry credentials).
            self.state = prepare(self.client, self.plan, make_secrets=(
                podman_secrets if self.rebuilds else _no_secrets))
            if self.rebuilds:
                self._rebuild()
            self._write_files()
        except BaseException:
            self.close()
            raise

    def _hold_userns(self) -> None:
        if self.plan.profile.userns == "host":
            return
        self._holder = self.client.containers.create(
            **holder_kwargs(self.plan, f"{self.plan.container_name}-userns"))
        self._holder.reload()
        maps = self._holder.attrs.get("HostConfig", {}).get("IDMappings") or {}
        if not (maps.get("UidMap") and maps.get("GidMap")):
            raise DebugError("podman gave the debug container no user namespace mapping")
        self.idmap = {"UidMap": list(maps["UidMap"]), "GidMap": list(maps["GidMap"])}

    def _take_store(self) -> None:
        """A project store is used by one build at a time (its flock, as the runner takes):
        the shell holds it until it ends, so no build of the project runs meanwhile."""
        store_dir = self.plan.store_dir
        if store_dir is None:
            return
        store_dir.mkdir(parents=True, exist_ok=True)
        lock = open_lock(store_lock_path(store_dir))
        self._lock = lock
        told = False
        while not self.canceled:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    self.on_note(f"waiting for another build using the store of project "
                                 f"{self.plan.project}")
                    told = True
                time.sleep(0.2)
        if not self.canceled:
            claim_store(self.client, self.plan, lambda: self.canceled, self.on_note)

    def _rebuild(self) -> None:
        """The same build with ``--layers`` in the session's fresh store, up to its failure."""
        from tui.engine.runner import BuildRunner

        record = self.record
        self.on_note(f"the {record.profile} build's store is gone and kept no layers: "
                     f"rebuilding with --layers in a fresh store kept for this shell")
        log = FailureLog()
        failures: list[Failed] = []

        def sink(event: Event) -> None:
            log.feed(event)
            if isinstance(event, Failed):
                failures.append(event)
            self.on_event(event)

        self._runner = BuildRunner(self.client, self.plan, sink, host_state=self.state,
                                   idmap=self.idmap)
        began = time.monotonic()
        done = self._runner.run()
        self.rebuild_s = round(time.monotonic() - began, 3)
        if self.canceled or done.status == "canceled":
            raise DebugCanceled
        text = read_containerfile(self.plan.containerfile)
        started = log.failed_at
        if started is None:  # no step failed this time: the one that did, if it ran
            key = f"{record.failed.stage}:{record.failed.step}"
            candidate = log.started.get(key)
            if candidate is None or candidate.instruction != record.failed.instruction:
                why = failures[0].message if failures else "it did not get there"
                raise DebugError(f"the rebuild did not reach {record.failed.where} "
                                 f"({record.failed.instruction}): {why}")
            self.on_note(f"{record.failed.where} passed in the rebuild; the shell opens "
                         "before it all the same")
            started = candidate
        self.failed = describe_failure(text, started)
        if self.failed.problem:
            raise DebugError(self.failed.problem)
        self.base = base_image(text, started.stage, started.step, log.layers,
                               dict(self.plan.build_args))

    def _write_files(self) -> None:
        """The shell's files in the per-build directory (0700 above them): history, the
        command, the ARG values (never on a command line or in an inspect), the banner. The
        directory is open to every uid of the container: the step may run as any USER."""
        folder = check_own_path(self.plan.debug_dir, self.plan.data_dir)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        command = self.failed.command
        files = {HISTORY: command + "\n" if typable(command) else "",
                 COMMAND: command + ("\n" if command and not command.endswith("\n") else ""),
                 ARGS: arg_env(self.failed, dict(self.plan.build_args))}
        for name, text in files.items():
            self._write(name, text)
        os.chmod(folder, 0o777)

    def _write(self, name: str, text: str) -> None:
        path = self.plan.debug_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(path, 0o666 if name == HISTORY else 0o644)

    # -- the shell -------------------------------------------------------------------------
    def argv(self, tty: bool) -> list[str]:
        """The shell's ``podman run``, as the plan renders every container (one plan, many
        renderings), through the configured service."""
        script = shell_script(self.plan, self.base, self.failed.binds, tty)
        argv = podman_run_argv(self.plan, self.plan.debug_phase(script), idmap=self.idmap,
                               interactive=True, tty=tty)
        return [argv[0], "--url", self.podman_url, *argv[1:]]

    def run_shell(self, tty: bool | None = None) -> int:
        """The shell on this terminal (stdin and stdout: a pipe works too, then without a
        prompt); its exit status. SIGHUP and SIGTERM end it (then chain to what was there)."""
        if tty is None:
            tty = _is_terminal()
        argv = self.argv(tty)
        self._write(BANNER, banner(self.record, self.failed, self.base,
                                   rebuilt=self.rebuild_s is not None, tty=tty))
        pretype = self.failed.command if tty and typable(self.failed.command) else ""
        with self._signals_end_shell():
            if self.canceled:
                return 130
            return run_on_terminal(argv, stop=self._stop, pretype=pretype)

    @contextlib.contextmanager
    def _signals_end_shell(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            self._stop.set()
            old = previous.get(signum)
            if callable(old):
                old(signum, frame)

        for sig in (signal.SIGHUP, signal.SIGTERM):
            take_over(int(sig), handler, previous)  # (nohup's SIGHUP stays ignored)
        try:
            yield
        finally:
            for number, old in previous.items():
                signal.signal(number, old)

    # -- clean-up --------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Removes everything the session made so far; returns what could not be removed.
        Again after more was made (a cancel racing ``prepare``) removes that too."""
        with self._mutex:
            return self._close()

    def _close(self) -> list[str]:
        left: list[str] = []
        with contextlib.suppress(NotFound):
            # Still there: the terminal went away (the shell ended, it removes itself). Killed
            # at once rather than stopped (10 s): its working container is swept below.
            shell = self.client.containers.get(f"{self.plan.container_name}-shell")
            with contextlib.suppress(Exception):
                shell.kill()
            problem = remove_container(shell)
            if problem:
                left.append(f"container {self.plan.container_name}-shell ({problem})")
        left += self._sweep()
        if self.state is not None:
            left += release(self.client, self.state)
            self.state = None
        if self._holder is not None:
            problem = remove_container(self._holder)
            if problem:
                left.append(f"container {self.plan.container_name}-userns ({problem})")
            self._holder = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return left

    def _working_ids(self, root: Path) -> list[str]:
        """By the working container's exact name, from the store's own list: read as hostile
        (a RUN step may have written it; tui.engine.store_files), ids only as 64 hex."""
        from tui.engine.store_files import working_containers

        name = working_name(self.plan)
        return [container_id for container_id, names, _ in working_containers(str(root))
                if name in names]

    def _sweep(self) -> list[str]:
        """The working container, if the shell did not remove it (killed, hung up), from a
        store that outlives the session: by its exact name, never another's."""
        root = store_root(self.plan)
        if root is None or self.state is None:
            return []  # a fresh store goes whole with its volume
        ids = self._working_ids(root)
        if not ids:
            return []
        kwargs = create_kwargs(self.plan, self.plan.debug_phase(["buildah", "rm", *ids]),
                               self.idmap)
        kwargs["name"] = f"{self.plan.container_name}-sweep"
        try:
            run_once(self.client, kwargs)
        except Exception as exc:  # noqa: BLE001 - podman gone: say what is left in the store
            return [f"working container {working_name(self.plan)} in {root} ({exc})"]
        if self._working_ids(root):
            return [f"working container {working_name(self.plan)} in {root}"]
        return []


def _no_secrets(client: Any, plan: BuildPlan) -> list[str]:
    return []


def _is_terminal() -> bool:
    try:
        return os.isatty(0) and os.isatty(1)
    except OSError:
        return False


__all__ = ["READY", "DebugCanceled", "DebugSession", "arg_env", "banner", "shell_script",
           "typable", "working_name"]
