"""A shell where a build failed, in the TUI: the failure panel offers it (s), the app suspends
for it, the shell's `podman run` runs on the real terminal (the subprocess is the boundary
mocked here) and the app comes back where it was, the session closed. The podman side is
tested for real in tests/integration/test_debug_real.py."""

from __future__ import annotations

from ui_helpers import make_app, wait_for

from tests.support.replay import ReplayEngine
from tests.support.scenes import build_until
from tui.screens.build import BuildScreen
from tui.widgets.result_panel import FailurePanel


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]  # noqa: SLF001 - Textual has no public list of notifications


def fake_popen(happened: list[object]):
    """``subprocess.Popen`` as the terminal module calls it: the shell, exited with 0."""

    class FakeProcess:
        def __init__(self, argv: list[str]) -> None:
            happened.append(("run", list(argv)))

        def wait(self, timeout: float | None = None) -> int:
            return 0

    return FakeProcess


async def test_s_suspends_the_app_runs_the_shell_and_comes_back(history, monkeypatch):
    engine = ReplayEngine(history, stream="failed-exit42")
    app = make_app(engine)
    happened: list[object] = []
    monkeypatch.setattr("tui.engine.terminal.subprocess.Popen", fake_popen(happened))
    async with app.run_test(size=(120, 40)) as pilot:
        await build_until(pilot, lambda s: s.finished, context="broken")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert screen.check_action("shell", ())
        panel = screen.query_one(FailurePanel).render().plain
        assert "shell    s opens one in the state before this step" in panel
        driver = app._driver  # noqa: SLF001 - the headless driver cannot suspend; this one can
        monkeypatch.setattr(type(driver), "can_suspend", property(lambda self: True))
        monkeypatch.setattr(driver, "suspend_application_mode", lambda: happened.append("suspend"))
        monkeypatch.setattr(driver, "resume_application_mode", lambda: happened.append("resume"))
        await pilot.press("s")
        await wait_for(pilot, lambda: engine.debug_sessions
                       and engine.debug_sessions[-1].closed, what="the session closed")
        await pilot.pause()
        session = engine.debug_sessions[-1]
        assert session.prepared
        [run] = [h for h in happened if isinstance(h, tuple)]
        assert happened == ["suspend", run, "resume"]
        argv = run[1]
        assert argv[:6] == ["podman", "--url", engine.config.podman_url, "run", "--rm", "-i"]
        assert "-t" not in argv  # (no terminal under the test)
        assert "--network=none" in argv and "--label=buildcage.phase=debug" in argv
        assert app.screen is screen  # back where it was
        assert any("the shell ended (0)" in n for n in notes(app))
        assert not session.plan.build_dir.exists()  # closed: its files are gone


async def test_no_shell_where_the_terminal_cannot_be_handed_over(history, monkeypatch):
    engine = ReplayEngine(history, stream="failed-exit42")
    app = make_app(engine)
    happened: list[object] = []
    monkeypatch.setattr("tui.engine.terminal.subprocess.Popen", fake_popen(happened))
    async with app.run_test(size=(120, 40)) as pilot:
        await build_until(pilot, lambda s: s.finished, context="broken")
        await pilot.press("s")
        await wait_for(pilot, lambda: engine.debug_sessions
                       and engine.debug_sessions[-1].closed, what="the session closed")
        await pilot.pause()
        assert happened == []
        assert any("buildcage debug --last" in n for n in notes(app))


async def test_no_shell_after_a_success_or_a_failure_outside_the_steps(history):
    engine = ReplayEngine(history)  # a warm build that succeeds
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await build_until(pilot, lambda s: s.finished)
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert not screen.check_action("shell", ())
        await pilot.press("s")
        await pilot.pause()
        assert engine.debug_sessions == []


async def test_a_failure_at_from_says_why_there_is_no_shell(history, tmp_path):
    from tui.engine.events import Done, Failed, StepStarted

    def at_from(plan):
        return [StepStarted(stage=1, stages=1, step=1, steps=2, instruction="FROM nowhere"),
                Failed(message="no such image", step="FROM nowhere"),
                Done(status="failed", duration_s=0.5, steps_total=1)]

    engine = ReplayEngine(history, stream=at_from)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await build_until(pilot, lambda s: s.finished, context="broken")
        screen = app.screen
        assert isinstance(screen, BuildScreen)
        assert not screen.check_action("shell", ())
        panel = screen.query_one(FailurePanel).render().plain
        assert "shell    none: the build failed at 'FROM nowhere'" in panel
