"""The image on the host, in the TUI: the session's "load into host" checkbox, the question
before moving a host tag that names another image, the result panel's load key (l) and its
"run it" key (r), which suspends the app, runs `podman run --rm -it` on the real terminal and
comes back. The podman side is tested for real in tests/integration/test_load_real.py."""

from __future__ import annotations

import subprocess

import pytest
from textual.widgets import Checkbox
from ui_helpers import make_app, pick_context, wait_for

from tests.support.replay import ReplayEngine
from tui.engine.history import History
from tui.screens.build import BuildScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.session import SessionScreen
from tui.widgets.result_panel import FailurePanel, ResultPanel

TAG = "localhost/buildcage/hello:latest"
BUILT = "ab9d8035ec0902274f05c94aea71e61f6886d36b7a77bcd0f7cd4d96e7591e0c"  # warm-push's
OTHER = "0123456789ab" + "c" * 52


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]  # noqa: SLF001 - Textual has no public list of notifications


async def build(pilot, *, load: bool) -> BuildScreen:
    await pick_context(pilot, "hello")
    pilot.app.screen.query_one("#load", Checkbox).value = load
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, BuildScreen), what="build screen")
    screen = pilot.app.screen
    assert isinstance(screen, BuildScreen)
    await wait_for(pilot, lambda: screen.finished, what="Done")
    await pilot.pause()
    return screen


def result(screen: BuildScreen) -> str:
    return screen.query_one(ResultPanel).render().plain


async def test_the_checkbox_asks_for_a_load_and_the_result_says_where_it_went(history):
    engine = ReplayEngine(history)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await build(pilot, load=True)
        assert engine.runners[-1].plan.load and not engine.runners[-1].plan.load_overwrite
        assert f"host     {TAG} · r runs it" in result(screen)
        assert screen.check_action("run", ()) and not screen.check_action("load", ())
        [record] = history.recent()
        assert record.loaded == TAG  # history records it


async def test_moving_another_images_tag_is_asked_first(history):
    engine = ReplayEngine(history, host_images={TAG: OTHER})
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        pilot.app.screen.query_one("#load", Checkbox).value = True
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        question = str(app.screen.query_one("#question").render())
        assert TAG in question and OTHER[:12] in str(app.screen.query_one("#detail").render())
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen) and engine.runners == []
        assert any("not started" in n for n in notes(app))
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen), what="build screen")
        plan = engine.runners[-1].plan
        assert plan.load and plan.load_overwrite


async def test_l_loads_a_finished_build_later_asking_before_moving_a_tag(history):
    engine = ReplayEngine(history, stream="warm-push", host_images={TAG: OTHER})
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await build(pilot, load=False)
        assert "host     not loaded · l loads it" in result(screen)
        assert screen.check_action("load", ()) and not screen.check_action("run", ())
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.state.loaded is not None, what="loaded")
        await pilot.pause()
        assert engine.loads == [(BUILT, False), (BUILT, True)]
        assert f"host     {TAG} · r runs it" in result(screen)
        assert screen.check_action("run", ())


async def test_run_it_suspends_the_app_runs_podman_and_comes_back(history, monkeypatch):
    engine = ReplayEngine(history)
    app = make_app(engine)
    happened: list[object] = []

    def fake_run(argv, check=False):  # the boundary: the real terminal's process
        happened.append(("run", list(argv)))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr("tui.engine.load.subprocess.run", fake_run)
    monkeypatch.setattr("builtins.input", lambda *a: happened.append("enter") or "")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await build(pilot, load=True)
        driver = app._driver  # noqa: SLF001 - the headless driver cannot suspend; this one can
        monkeypatch.setattr(type(driver), "can_suspend", property(lambda self: True))
        monkeypatch.setattr(driver, "suspend_application_mode", lambda: happened.append("suspend"))
        monkeypatch.setattr(driver, "resume_application_mode", lambda: happened.append("resume"))
        await pilot.press("r")
        await wait_for(pilot, lambda: "resume" in happened, what="resume")
        await pilot.pause()
        argv = ["podman", "--url", engine.config.podman_url, "run", "--rm", "-it", BUILT]
        assert happened == ["suspend", ("run", argv), "enter", "resume"]
        assert app.screen is screen  # back where it was
        assert any("exited with 0" in n for n in notes(app))


async def test_run_it_needs_a_loaded_image(history):
    engine = ReplayEngine(history, stream="warm-push")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await build(pilot, load=False)
        assert not screen.check_action("run", ())
        await pilot.press("r")
        await pilot.pause()
        assert app.screen is screen and engine.loads == []


async def test_a_load_refused_at_the_end_fails_the_build_and_l_offers_to_move_it(history):
    """The tag was taken while building: the build fails as a failed push does, the failure
    panel says why, and l asks before moving it."""
    engine = ReplayEngine(history, stream="warm-push-refused", host_images={TAG: OTHER})
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        engine.host_images = {}  # free when the build starts; taken by the time it loads
        screen = await build(pilot, load=True)
        engine.host_images = {TAG: OTHER}
        failure = screen.query_one(FailurePanel).render().plain
        assert "not loaded" in failure and OTHER[:12] in failure and "l moves it" in failure
        assert screen.check_action("load", ())
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.state.loaded is not None, what="loaded")
        assert engine.loads[-1] == (BUILT, True)


async def test_kube_and_load_together_is_a_message(history):
    engine = ReplayEngine(history)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        app.screen.query_one("#load", Checkbox).value = True
        app.screen.query_one("#on-kube", Checkbox).value = True
        await pilot.press("f5")
        await wait_for(pilot, lambda: any("--load" in n for n in notes(app)), what="message")
        assert engine.runners == []


def test_the_replay_engine_keeps_the_tag_rule(tmp_path):
    """Its fake load answers as the real one does (tests above lean on it)."""
    from tui.engine.load import LoadConflict

    engine = ReplayEngine(History(tmp_path / "h.sqlite3"), host_images={TAG: OTHER})
    plan = engine.plan(pick_hello(), profile="host-ro")
    with pytest.raises(LoadConflict):
        engine.load_built(plan, BUILT)
    assert engine.load_built(plan, BUILT, overwrite=True).tag == TAG
    assert engine.host_images == {TAG: BUILT}


def pick_hello():
    from ui_helpers import EXAMPLES

    return EXAMPLES / "hello"
