"""The TUI builds through the engine's one path, as the CLI does (Engine.prepare, then
Engine.start): a push target whose registry does not answer stops the build before it starts,
the plan view's command names files that exist, and a Containerfile the engine cannot read is
a message, not a build."""

from __future__ import annotations

import shlex
from pathlib import Path

from textual.widgets import Input, TextArea
from ui_helpers import make_app, pick_context, wait_for

from tests.support.replay import ReplayEngine
from tui.engine.request import PreparedBuild
from tui.screens.build import BuildScreen
from tui.screens.plan_view import PlanViewScreen
from tui.screens.session import SessionScreen
from tui.widgets.push_target import PushTargetField


def dead_registry(host: str, tls_verify: bool) -> tuple[bool, str]:
    dead_registry.calls.append(host)  # type: ignore[attr-defined]
    return False, f"{host} does not answer (connection refused)"


dead_registry.calls = []  # type: ignore[attr-defined]


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]  # noqa: SLF001 - Textual has no public list of notifications


async def test_a_build_to_a_dead_registry_does_not_start(history) -> None:
    engine = ReplayEngine(history, reach=dead_registry)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        push = app.screen.query_one(PushTargetField).query_one("#push", Input)
        push.value = "127.0.0.1:5999/demo/hello:1"
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("does not answer" in m for m in messages(app)),
                       what="the refusal")
        assert "127.0.0.1:5999" in dead_registry.calls  # type: ignore[attr-defined]
        message = next(m for m in messages(app) if "does not answer" in m)
        assert message.startswith("push target '127.0.0.1:5999/demo/hello:1'")
        assert isinstance(app.screen, SessionScreen)
        assert engine.runners == [] and history.recent() == []


async def test_a_real_registry_check_refuses_a_closed_port(history) -> None:
    """The engine's own check, not a stand-in: nothing listens on 127.0.0.1:5999."""
    from tui.engine.registry import check_reachable

    engine = ReplayEngine(history, reach=check_reachable)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        app.screen.query_one(PushTargetField).query_one("#push", Input).value = \
            "127.0.0.1:5999/demo/hello:1"
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("5999" in m for m in messages(app)), what="refusal")
        assert isinstance(app.screen, SessionScreen) and engine.runners == []


async def test_a_build_runs_what_prepare_checked(engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        screen = app.screen
        assert isinstance(screen.prepared, PreparedBuild)
        await wait_for(pilot, lambda: screen.finished)
        assert engine.runners[0].plan is screen.prepared.plan


async def test_the_plan_view_command_names_files_that_exist(engine, data_home) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanViewScreen))
        command = app.screen.query_one("#podman-text", TextArea).text
    # The script's `podman run` commands (one per phase), each joined over its continuations.
    runs = command.replace("\\\n", " ").splitlines()
    words = [w for line in runs if line.startswith("podman run") for w in shlex.split(line)]
    mounts = [w.removeprefix("--volume=") for w in words if w.startswith("--volume=")]
    generated = [Path(m.split(":")[0]) for m in mounts if m.startswith(str(data_home))]
    assert generated, command  # the conf files buildcage writes for the builder
    # The build's own folders are the script's to make (a build only previewed makes none).
    made = {shlex.split(line)[-1] for line in command.splitlines() if line.startswith("mkdir ")}
    missing = [str(p) for p in generated if not p.exists() and str(p) not in made]
    assert missing == [], missing


async def test_a_latin1_containerfile_is_a_message(history, tmp_path) -> None:
    ctx = tmp_path / "latin1"
    ctx.mkdir()
    (ctx / "Containerfile").write_bytes(b"FROM scratch\nRUN echo caf\xe9\n")
    engine = ReplayEngine(history)
    app = make_app(engine, start=ctx)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("0xe9" in m for m in messages(app)), what="message")
        assert isinstance(app.screen, SessionScreen) and engine.runners == []


def slow_registry(host: str, tls_verify: bool) -> tuple[bool, str]:
    import time

    time.sleep(0.5)
    return True, f"{host} answered"


async def test_f5_twice_while_preparing_starts_one_build(history) -> None:
    engine = ReplayEngine(history, reach=slow_registry)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        app.screen.query_one(PushTargetField).query_one("#push", Input).value = \
            "127.0.0.1:5000/demo/hello:1"
        await pilot.pause()
        await pilot.press("f5", "f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        await wait_for(pilot, lambda: app.screen.finished)
        await pilot.pause(0.7)
        assert len(engine.runners) == 1
        assert len([s for s in app.screen_stack if isinstance(s, BuildScreen)]) == 1
