"""The TUI on SIGHUP (terminal closed) and SIGTERM: running builds are canceled and the app
ends, instead of the process dying at once with its builder left running."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from ui_helpers import WARM_PAUSE, FrozenClock, fake_reach, pick_context, wait_for

from tests.support.replay import ReplayEngine
from tui.app import BuildcageApp
from tui.interrupts import Interrupts
from tui.screens.build import BuildScreen


@pytest.fixture
def safety_net(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Signals that reached no handler of the app land here instead of ending the test run;
    and the test's own output stays where it is (a hang-up sends it to /dev/null)."""
    import tui.app
    import tui.interrupts

    for module in (tui.app, tui.interrupts):
        monkeypatch.setattr(module, "detach_from_terminal", lambda: None, raising=False)
    caught: list[int] = []
    old = {sig: signal.signal(sig, lambda s, f: caught.append(s))
           for sig in (signal.SIGHUP, signal.SIGTERM)}
    yield caught
    for sig, handler in old.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
async def test_a_signal_cancels_the_running_build_and_ends_the_app(history, safety_net, sig):
    engine = ReplayEngine(history, stream="warm-push", pause_after=WARM_PAUSE)
    app = BuildcageApp(engine, clock=FrozenClock(), reach=fake_reach, interrupts=Interrupts())
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen), what="build screen")
        await wait_for(pilot, lambda: bool(engine.runners), what="the runner")
        runner = engine.runners[0]
        os.kill(os.getpid(), sig)
        await wait_for(pilot, lambda: app._exit, what="the app to end")  # noqa: SLF001 - no public exit flag
    assert safety_net == []
    assert runner._cancel.is_set()  # noqa: SLF001 - the replay runner's cancel flag
    assert app.return_code == 130 and app.hung_up == sig
    # The build's thread records it (the process waits for that thread, the app's exit does
    # not): give it time on a loaded machine.
    deadline = time.monotonic() + 30
    while not history.recent() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert history.recent()[0].status == "canceled"  # the build ended, and was recorded


async def test_a_signal_while_the_app_starts_ends_it_at_once(history, safety_net):
    interrupts = Interrupts()
    interrupts.handle(signal.SIGHUP)  # came before the app was up (main installed the handler)
    app = BuildcageApp(ReplayEngine(history), clock=FrozenClock(), reach=fake_reach,
                       interrupts=interrupts)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._exit, what="the app to end")  # noqa: SLF001 - no public exit flag
    assert app.return_code == 130
