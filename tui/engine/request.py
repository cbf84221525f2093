"""The build use case's types, shared by the CLI and every TUI screen: what the user asked for
(``BuildRequest``), that request checked and ready to run (``PreparedBuild``, from
``Engine.prepare``), and the running build (``Runner``, from ``Engine.start``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from tui.engine.errors import UserError
from tui.engine.events import Done
from tui.engine.history import BuildRecord
from tui.engine.plan import BuildPlan
from tui.engine.secret_args import is_withheld

Where = Literal["local", "kube"]


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for, before it is checked into a BuildPlan. Empty strings mean
    "the default" (the config's profile, the context's Containerfile, the default tag...)."""

    context: Path
    profile: str = ""
    containerfile: str = ""
    push: str = ""
    build_args: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()
    """``(id, file)`` pairs for Buildah's ``--secret`` (see tui.engine.planner.parse_secrets);
    never recorded in history, so a rebuild from history asks for them again."""
    target_stage: str = ""
    no_cache: bool = False
    tag: str = ""
    project: str = ""
    on: Where = "local"
    """Where it runs: "local" (a builder container) or "kube" (the plan's Pod, kube play)."""
    load: bool = False
    """Put the image into the host's own podman store afterwards (tui.engine.load)."""
    load_overwrite: bool = False
    """...even when its tag names another image there (asked for, or confirmed in the TUI)."""
    session: bool = False
    """Run in a session builder (tui.engine.session_runner): the phases' containers kept,
    stopped, between builds; a build it cannot serve runs one-shot, with a note."""

    @classmethod
    def from_record(cls, record: BuildRecord) -> BuildRequest:
        """The same settings as a build in history (for "rebuild"). A secret-looking build
        argument's value was not kept (tui.engine.secret_args): such a build cannot be repeated
        from history alone (UserError naming them)."""
        withheld = [name for name, value in record.build_args.items() if is_withheld(value)]
        if withheld:
            raise UserError(f"build argument{'s' if len(withheld) > 1 else ''} "
                            f"{', '.join(withheld)} of build #{record.id} looked like a secret: "
                            "history kept no value to build with again; start the build "
                            "from the session form and give it there")
        return cls(context=Path(record.context), profile=record.profile,
                   containerfile=record.containerfile, push=record.target,
                   build_args=tuple(record.build_args.items()),
                   target_stage=record.stage_target, no_cache=record.no_cache, tag=record.tag,
                   load=bool(record.loaded))

    def with_profile(self, profile: str, *, no_cache: bool, push: str = "") -> BuildRequest:
        """The same build in another profile (the comparison's): it delivers only where
        ``push`` says, never into the host's store."""
        return replace(self, profile=profile, no_cache=no_cache, push=push, load=False,
                       load_overwrite=False, session=False)


@dataclass(frozen=True)
class PreparedBuild:
    """A request that passed every check (profile, confirmation, paths, Containerfile, push
    target) and whose plan files are written: ``Engine.start`` runs it."""

    request: BuildRequest
    plan: BuildPlan

    @property
    def on(self) -> Where:
        return self.request.on


class Runner(Protocol):
    """A build on its way, local or as a Kubernetes Pod: ``run()`` blocks until it ends and
    returns its Done (the last event it delivered); ``cancel()`` may be called from any
    thread, before or during ``run()``, and returns at once."""

    def run(self) -> Done: ...

    def cancel(self) -> None: ...
