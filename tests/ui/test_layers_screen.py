"""The layers screen: reached with ``i`` from a build's result and from history, the layer list
on one side, the selected layer's files on the other, a/c/r showing or hiding each kind of
change. The report is a recording of ``buildcage layers --json`` of a real build
(tests/data/layers/layered.json); reading it from podman is tested in
tests/integration/test_layers_real.py."""

from __future__ import annotations

from textual.pilot import Pilot
from ui_helpers import fixed_records, make_app, wait_for

from tests.support.replay import ReplayEngine
from tests.support.scenes import build_until, history_shown
from tui.engine.history import History
from tui.engine.layer_reader import LayersError, LayerSource
from tui.screens.build import BuildScreen
from tui.screens.layers import LayersScreen
from tui.widgets.layer_files import LayerFiles
from tui.widgets.layer_list import LayerList
from tui.widgets.layer_summary import LayerDetail, LayerSummary

BUILT = "ab9d8035ec0902274f05c94aea71e61f6886d36b7a77bcd0f7cd4d96e7591e0c"  # warm-push's


async def layers_shown(pilot: Pilot) -> LayersScreen:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LayersScreen), what="layers")
    screen = pilot.app.screen
    assert isinstance(screen, LayersScreen)
    await wait_for(pilot, lambda: screen.report is not None or
                   screen.query_one(LayerSummary).error, what="the report")
    await pilot.pause()
    return screen


def tree_lines(screen: LayersScreen) -> list[str]:
    """The file tree as drawn: every visible node's label, plain."""
    files = screen.query_one(LayerFiles)
    lines = []

    def walk(node) -> None:
        for child in node.children:
            lines.append(files.render_label(child, files.rich_style, files.rich_style).plain)
            if child.is_expanded:
                walk(child)

    walk(files.root)
    return [" ".join(line.split()) for line in lines]


async def test_from_the_result_the_last_layer_shows_what_it_changed(history: History) -> None:
    engine = ReplayEngine(history, stream="warm-push")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await build_until(pilot, lambda s: s.finished)
        build = pilot.app.screen
        assert isinstance(build, BuildScreen)
        await pilot.press("i")
        screen = await layers_shown(pilot)
        (source,) = engine.layer_sources
        assert source == LayerSource(image=BUILT, profile=build.plan.profile.name,
                                     project=build.plan.project,
                                     context=str(build.plan.context))
        assert screen.query_one(LayerList).row_count == 4
        assert screen.query_one(LayerDetail).current.index == 3  # type: ignore[union-attr]
        # Largest first, each kind marked; the hostile name is shown, not obeyed.
        assert tree_lines(screen) == ["▼ 5.0 kB data/", "3.0 kB - b.bin", "2.0 kB ~ a.bin",
                                      "0 B + esc\\x1b]0;t\\x07"]
        summary = screen.query_one(LayerSummary).render().plain
        assert "efficiency 99.75%" in summary and "wasted 6.0 kB" in summary

        await pilot.press("r")  # hide what was removed
        assert tree_lines(screen) == ["▼ 2.0 kB data/", "2.0 kB ~ a.bin",
                                      "0 B + esc\\x1b]0;t\\x07"]
        assert screen.query_one(LayerFiles).border_subtitle == "showing added, changed"
        await pilot.press("a", "c")
        assert tree_lines(screen) == []
        await pilot.press("a", "c", "r")

        await pilot.press("up")  # layer 2: the first RUN
        assert screen.query_one(LayerDetail).current.index == 2  # type: ignore[union-attr]
        assert tree_lines(screen) == ["▼ 3.5 kB data/", "3.0 kB + b.bin", "500 B + c.bin",
                                      "▼ 0 B etc/", "0 B + hostname", "0 B + hosts",
                                      "0 B + resolv.conf"]
        await pilot.press("escape")
        assert pilot.app.screen is build


async def test_layers_are_offered_only_for_a_built_image(history: History) -> None:
    engine = ReplayEngine(history, stream="failed-multistage")
    async with make_app(engine).run_test(size=(80, 24)) as pilot:
        await build_until(pilot, lambda s: s.finished, context="broken")
        screen = pilot.app.screen
        assert isinstance(screen, BuildScreen)
        assert not screen.check_action("layers", ())
        await pilot.press("i")
        await pilot.pause()
        assert pilot.app.screen is screen and engine.layer_sources == []


async def test_from_history_the_selected_build(history: History) -> None:
    fixed_records(history)
    engine = ReplayEngine(history)
    async with make_app(engine).run_test(size=(120, 32)) as pilot:
        await history_shown(pilot)
        await pilot.press("i")
        await layers_shown(pilot)
        (source,) = engine.layer_sources
        newest = history.recent(1)[0]
        assert source == LayerSource(image=newest.image_id, profile=newest.profile,
                                     context=newest.context)
        await pilot.press("escape")
        await pilot.press("down", "down")  # the failed build: no image
        await pilot.press("i")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, LayersScreen)
        assert len(engine.layer_sources) == 1


async def test_a_report_that_cannot_be_read_says_why(history: History) -> None:
    engine = ReplayEngine(history, stream="warm-push",
                          layers=LayersError("profile isolated's store is removed with its "
                                             "build \x1b[2J"))
    async with make_app(engine).run_test(size=(80, 24)) as pilot:
        await build_until(pilot, lambda s: s.finished)
        await pilot.press("i")
        screen = await layers_shown(pilot)
        note = screen.query_one(LayerSummary).render().plain
        assert "store is removed with its build \\x1b[2J" in note
        assert screen.query_one(LayerList).row_count == 0


async def test_a_large_layer_is_sorted_off_the_ui_thread(history: History, monkeypatch) -> None:
    from tui.engine.layers import Entry, LayerInput, analyze
    from tui.messages import LayersRequested
    from tui.screens import layers as layers_screen

    monkeypatch.setattr(layers_screen, "INLINE_CHANGES", 1000)
    many = [Entry(f"/m/f{i:05d}", i, False) for i in range(3000)]
    big = analyze("7" * 64, [LayerInput("l0", [Entry("/m", 0, True), *many])])
    engine = ReplayEngine(history)
    monkeypatch.setattr(engine, "layers", lambda source: big)
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(LayersRequested(LayerSource(image="7" * 64, profile="host-ro")))
        screen = await layers_shown(pilot)
        files = screen.query_one(LayerFiles)
        await wait_for(pilot, lambda: 0 in screen.indexes and files.root.children,
                       what="the sorted tree")
        assert tree_lines(screen) == ["▶ 4.5 MB + m/"]  # too many to open by itself
        files.focus()
        await pilot.press("enter")  # opened by hand: its children are added then
        lines = tree_lines(screen)
        # The largest first; a directory shows at most 500 children, then says how many more.
        assert lines[:3] == ["▼ 4.5 MB + m/", "3.0 kB + f02999", "3.0 kB + f02998"]
        assert lines[-1] == "… 2500 more, smaller"
