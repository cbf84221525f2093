"""The session screen: context picker, Containerfile fields, push target, summary card, plan view
and the host-rw confirmation."""

from __future__ import annotations

from textual.widgets import Input, Label, Select, Static, TextArea
from ui_helpers import EXAMPLES, fake_reach, make_app, pick_context, wait_for

from tui.engine.planner import PlanError
from tui.screens.build import BuildScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.plan_view import PlanViewScreen
from tui.screens.session import SessionScreen
from tui.widgets.context_tree import ContextTree
from tui.widgets.summary_card import LOADING, SummaryCard


async def test_picking_multistage_fills_stages_args_and_preview(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        tree = app.screen.query_one(ContextTree)
        await wait_for(pilot, lambda: len(tree.root.children) == 3, what="tree loaded")
        # examples/ holds broken, hello, multistage (sorted); the root line is first.
        await pilot.press("down", "down", "down", "enter")
        screen = app.screen
        await wait_for(pilot, lambda: screen.context == (EXAMPLES / "multistage").resolve())
        assert "examples/multistage" in str(screen.query_one("#context-label", Label).render())
        assert screen.query_one("#containerfile", Input).value == "Containerfile"
        args = screen.query_one("#build-args", Input).value
        assert "BASE=127.0.0.1:5000/buildcage/busybox:latest" in args
        assert "VERSION=1.0" in args
        stage = screen.query_one("#stage", Select)
        assert [value for _, value in stage._options if value is not Select.NULL] == ["build"]  # noqa: SLF001 - Textual's Select has no public list of options
        assert screen.query_one("#preview", TextArea).text.startswith("# Two stages")
        request = screen.request()
        assert request.build_args == (("BASE", "127.0.0.1:5000/buildcage/busybox:latest"),
                                      ("VERSION", "1.0"))


async def test_tree_marks_directories_with_a_containerfile(engine, tmp_path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "notes.txt").write_text("files are not contexts")
    app = make_app(engine, start=tmp_path)
    async with app.run_test() as pilot:
        tree = app.screen.query_one(ContextTree)
        await wait_for(pilot, lambda: len(tree.root.children) == 2, what="tree loaded")
        names = {str(node.label): tree.is_buildable(node.data.path) for node in tree.root.children}
        assert names == {"app": True, "plain": False}
        style = tree.rich_style
        assert "◆" in tree.render_label(tree.root.children[0], style, style).plain


async def test_bad_reference_shows_the_parser_message(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "hello")
        push = app.screen.query_one("#push", Input)
        push.focus()
        await pilot.press(*"MyRepo:bad tag")
        status = app.screen.query_one("#push-status", Label)
        await wait_for(pilot, lambda: "invalid characters" in str(status.render()))
        assert "tag 'bad tag'" in str(status.render())
        assert push.has_class("-invalid")
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        assert engine.runners == []


async def test_valid_reference_is_checked_for_reachability(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "hello")
        app.screen.query_one("#push", Input).value = "127.0.0.1:5000/demo/hello:x"
        status = app.screen.query_one("#push-status", Label)
        await wait_for(pilot, lambda: "answered" in str(status.render()), what="reachability")
        # The local registry is plain HTTP in the default config: no TLS verification.
        assert fake_reach.calls == [("127.0.0.1:5000", False)]
        assert status.has_class("-ok")


async def test_registry_select_fills_the_push_reference(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "multistage")
        app.screen.query_one("#registry", Select).value = "127.0.0.1:5000"
        push = app.screen.query_one("#push", Input)
        await wait_for(pilot, lambda: push.value != "")
        assert push.value == "127.0.0.1:5000/buildcage/multistage:latest"


async def test_summary_card_shows_facts_from_the_recorded_inspect(engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await pick_context(pilot, "hello")
        card = app.screen.query_one(SummaryCard)
        summary = card.summary
        assert summary is not None and summary.profile.name == "host-ro"
        assert summary.facts.host_store == "read-only"
        assert "CHOWN" in summary.facts.effective_caps
        text = card.render().plain
        # host store read-only, no user namespace: two off (issue 7, item 6); the build phase's
        # builder has no network.
        assert "Security ●●●○○ 3/5" in text
        assert "no network: RUN steps reach nothing" in text
        assert "network        none: no network at all" in text
        assert "engine socket  none" in text
        # Three overlays of the host store, never the store itself (tui.engine.hostview).
        for part in ("overlay", "overlay-images", "overlay-layers"):
            assert (f"ro+overlay /var/lib/shared/{part} ← /var/lib/containers/storage/{part}"
                    in text)
        assert "← /var/lib/containers/storage\n" not in text
        assert "no finished build of this context" in text
        # Another profile, other facts: isolated has a fresh volume store and no host store.
        app.screen.query_one("#profile", Select).value = "isolated"
        await wait_for(pilot, lambda: card.summary is not None
                       and card.summary.profile.name == "isolated")
        assert card.summary.facts.host_store == "none"
        text = card.render().plain
        assert "rw /var/lib/containers ← volume buildcage-store-0123456789ab" in text
        assert "user ns        0:200000:65536" in text


async def test_summary_card_says_it_is_checking(history) -> None:
    from tests.support.replay import ReplayEngine

    engine = ReplayEngine(history, summary_delay=1.0)
    app = make_app(engine)
    async with app.run_test() as pilot:
        app.screen.select_context(EXAMPLES / "hello")
        card = app.screen.query_one(SummaryCard)
        await pilot.pause()
        assert LOADING in card.render().plain
        await wait_for(pilot, lambda: card.summary is not None)


async def test_summary_errors_are_shown_in_the_card(history) -> None:
    from tests.support.replay import ReplayEngine

    for error in (RuntimeError("podman API service does not answer at unix:///x"),
                  PlanError("Containerfile 'x' does not exist")):
        engine = ReplayEngine(history, summary_error=error)
        app = make_app(engine)
        async with app.run_test() as pilot:
            await pick_context(pilot, "hello")
            card = app.screen.query_one(SummaryCard)
            assert card.error
            assert str(error) in card.render().plain
            assert app.is_running


async def test_plan_view_shows_podman_run_and_kube_and_copies(engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "hello")
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanViewScreen))
        podman = app.screen.query_one("#podman-text", TextArea).text
        assert podman.startswith("set -e") and "\npodman run" in podman
        assert "/context:ro" in podman
        # host-ro (the default) reads the host store through overlays: no Pod can.
        kube = app.screen.query_one("#kube-text", TextArea).text
        assert kube.startswith("# profile host-ro cannot run as a Kubernetes Pod")
        await pilot.press("escape")
        assert isinstance(app.screen, SessionScreen)
        app.screen.query_one("#profile", Select).value = "project"
        card = app.screen.query_one(SummaryCard)
        await wait_for(pilot, lambda: card.summary is not None
                       and card.summary.profile.name == "project")
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanViewScreen))
        await pilot.pause()
        await pilot.press("k")
        await pilot.press("c")
        kube = app.screen.query_one("#kube-text", TextArea).text
        assert '"Pod"' in kube
        assert app.clipboard == kube
        await pilot.press("escape")
        assert isinstance(app.screen, SessionScreen)


async def _choose_host_rw_and_build(pilot) -> None:
    await pick_context(pilot, "hello")
    pilot.app.screen.query_one("#profile", Select).value = "host-rw"
    await pilot.pause()
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="dialog")


async def test_host_rw_asks_and_no_starts_nothing(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await _choose_host_rw_and_build(pilot)
        assert "host-rw" in str(app.screen.query_one("#question", Label).render())
        detail = str(app.screen.query_one("#detail", Static).render())
        assert "It lets the build write into the host's image store" in detail
        assert "It turns SELinux separation off." in detail
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        assert engine.runners == []


async def test_host_rw_yes_builds_with_host_rw(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await _choose_host_rw_and_build(pilot)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        await wait_for(pilot, lambda: app.screen.finished)
        assert engine.runners[0].plan.profile.name == "host-rw"


async def test_build_without_a_context_says_so(engine, tmp_path) -> None:
    app = make_app(engine, start=tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen)
        assert any("pick a context" in n.message for n in app._notifications)  # noqa: SLF001 - Textual has no public list of notifications


async def test_bad_build_args_stop_the_build_with_a_message(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "multistage")
        args = app.screen.query_one("#build-args", Input)
        args.value = "VERSION=2.0 not-an-arg"
        await pilot.pause()
        assert args.has_class("-invalid")
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen) and engine.runners == []
        assert any("must look like NAME=VALUE" in n.message for n in app._notifications)  # noqa: SLF001 - Textual has no public list of notifications


async def test_build_passes_the_form_to_the_plan(history) -> None:
    from tests.support.replay import ReplayEngine

    engine = ReplayEngine(history, stream="multistage-target")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "multistage")
        screen = app.screen
        screen.query_one("#build-args", Input).value = "VERSION=2.0"
        screen.query_one("#stage", Select).value = "build"
        screen.query_one("#push", Input).value = "127.0.0.1:5000/demo/multi:2"
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        await wait_for(pilot, lambda: app.screen.finished)
        plan = engine.runners[0].plan
        assert plan.build_args == (("VERSION", "2.0"),)
        assert plan.target_stage == "build"
        assert plan.push == "127.0.0.1:5000/demo/multi:2"
        assert plan.containerfile == (EXAMPLES / "multistage" / "Containerfile").resolve()
        # The multi-stage stream: three stages, the first step of stage 1 from cache.
        assert app.screen.header_text().startswith("Built")
        assert app.screen.query_one("#steps").status_of("1:2") == "cached"


async def test_secrets_field_reaches_the_plan_and_bad_ones_stop_the_build(history, tmp_path
                                                                          ) -> None:
    from tests.support.replay import ReplayEngine

    token = tmp_path / "token.txt"
    token.write_text("s3cret")
    engine = ReplayEngine(history, stream="multistage-target")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pick_context(pilot, "multistage")
        field = app.screen.query_one("#secrets", Input)
        field.value = "id=tok,src=/no/such/file"
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(app.screen, SessionScreen) and engine.runners == []
        assert any("is not a file" in n.message for n in app._notifications)  # noqa: SLF001 - Textual has no public list of notifications
        field.value = f"id=tok,src={token}"
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen))
        await wait_for(pilot, lambda: app.screen.finished)
        assert engine.runners[0].plan.secrets == (("tok", str(token)),)


async def test_no_push_warns_that_a_fresh_store_takes_the_image_with_it(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "hello")
        status = app.screen.query_one("#push-status", Label)
        assert "stays in the builder's store" in str(status.render())
        app.screen.query_one("#profile", Select).value = "isolated"
        await wait_for(pilot, lambda: "deleted with the fresh store" in str(status.render()),
                       what="the isolated warning")
        assert status.has_class("-warn")
        app.screen.query_one("#profile", Select).value = "project"
        await wait_for(pilot, lambda: "stays in the builder's store" in str(status.render()))


async def test_the_pod_box_runs_the_plan_as_a_kubernetes_pod(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "hello")
        app.screen.query_one("#profile", Select).value = "project"  # host-ro has no Pod form
        await pilot.pause()
        app.screen.query_one("#on-kube").value = True
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen), what="build screen")
        await wait_for(pilot, lambda: app.screen.finished, what="the replayed build")
        assert engine.last_on == "kube"
        assert "Kubernetes Pod" in app.screen.sub_title


async def test_a_build_runs_in_a_session_builder_only_when_its_box_is_checked(engine) -> None:
    app = make_app(engine)
    async with app.run_test() as pilot:
        await pick_context(pilot, "hello")
        box = app.screen.query_one("#session")
        assert box.value is False  # one-shot unless the user asks
        await wait_for(pilot, lambda: engine.summaries_in_session == [False], what="card")
        box.value = True
        await wait_for(pilot, lambda: engine.summaries_in_session[-1:] == [True],
                       what="the card read from the session builder")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildScreen), what="build screen")
        await wait_for(pilot, lambda: app.screen.finished, what="the replayed build")
        assert engine.last_on == "local" and engine.last_session is True


async def test_a_risky_user_profile_asks_and_lists_its_risks(history) -> None:
    from tests.support.replay import ReplayEngine
    from tui.engine.config import Config

    config = Config(profiles={"fast": {"base": "isolated", "cap_add": ["SYS_ADMIN"]}})
    engine = ReplayEngine(history, config=config)
    app = make_app(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await pick_context(pilot, "hello")
        app.screen.query_one("#profile", Select).value = "fast"
        card = app.screen.query_one(SummaryCard)
        await wait_for(pilot, lambda: card.summary is not None
                       and card.summary.profile.name == "fast")
        assert ("⚠ it adds capabilities beyond the builder's default set: SYS_ADMIN"
                in card.render().plain)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="dialog")
        detail = str(app.screen.query_one("#detail", Static).render())
        assert "It adds capabilities beyond the builder's default set: SYS_ADMIN." in detail
        await pilot.press("n")
        await pilot.pause()
        assert engine.runners == []
