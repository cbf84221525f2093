"""The session screen: pick a context, its Containerfile settings, a profile and a push target;
read the profile's security-versus-speed card; start the build."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, Checkbox, DirectoryTree, Footer, Header, Label, Select, TextArea

from tui.engine.containerfile import find_containerfile
from tui.engine.errors import UserError
from tui.engine.plan import BuildPlan
from tui.engine.planner import PlanError, default_tag
from tui.engine.registry import parse_reference
from tui.engine.request import BuildRequest
from tui.engine.summary import ProfileSummary
from tui.engine.text import visible
from tui.messages import BuildRequested, CompareAsked, CompareRequested
from tui.screens.base import BuildcageScreen
from tui.services import Services, show_error
from tui.styles_path import css_path
from tui.widgets.containerfile_fields import ContainerfileFields
from tui.widgets.context_tree import ContextTree
from tui.widgets.push_target import PushTargetField
from tui.widgets.summary_card import SummaryCard

SUMMARY_DEBOUNCE_S = 0.3


class SessionScreen(BuildcageScreen[None]):
    CSS_PATH = css_path("session.tcss")
    BINDINGS = [
        Binding("f5", "build", "Build"),
        Binding("f2", "plan", "Plan"),
        Binding("f3", "app.history", "History"),
        Binding("f4", "compare", "Compare"),
    ]

    class SummaryReady(Message):
        """The summary worker's answer: a summary, or the error text (then summary is None)."""

        def __init__(self, serial: int, summary: ProfileSummary | None, error: str = "") -> None:
            super().__init__()
            self.serial, self.summary, self.error = serial, summary, error

    def __init__(self, services: Services, start_dir: Path) -> None:
        super().__init__()
        self.services = services
        self.engine = services.engine
        self.start_dir = start_dir.expanduser().resolve()
        self.context: Path | None = None
        """The chosen build context (resolved), None until one is picked."""
        self._serial = 0
        """Bumped on every change the card depends on; older answers are dropped."""
        self._summary_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        profiles = self.engine.profiles.profiles
        hosts = list(self.engine.config.registries)
        yield Header()
        with Horizontal(id="session-body"):
            with Vertical(id="picker"):
                yield ContextTree(self.start_dir, id="tree", classes="panel")
                yield TextArea("", read_only=True, show_line_numbers=True, soft_wrap=False,
                               id="preview", classes="panel")
            with VerticalScroll(id="form"):
                yield Label("no context chosen", id="context-label")
                yield ContainerfileFields(id="cf-fields")
                with Horizontal(classes="form-row"):
                    yield Label("Profile", classes="form-label")
                    yield Select([(p.name + (" ⚠" if p.requires_confirmation else ""), p.name)
                                  for p in profiles], value=self.engine.config.default_profile,
                                 allow_blank=False, compact=True, id="profile")
                yield PushTargetField(hosts, self.services.reach,
                                      self.engine.config.tls_verify_for, id="push-field")
                with Horizontal(classes="form-row", id="load-row"):
                    yield Label("Load", classes="form-label")
                    yield Checkbox("into this host's podman", id="load", compact=True)
                    # Off by default: a session keeps containers (stopped) between builds,
                    # which a user should choose (README, Threat model: session builders).
                    yield Checkbox("session", id="session", compact=True,
                                   tooltip="keep this profile and project's builder "
                                           "containers between builds (each build starts "
                                           "them afresh); removed when buildcage exits")
                with Horizontal(classes="form-row", id="actions"):
                    yield Checkbox("no cache", id="no-cache", compact=True)
                    yield Checkbox("as a Kubernetes Pod", id="on-kube", compact=True)
                    yield Button("Build ▶ F5", variant="primary", compact=True, id="build")
                yield SummaryCard(id="summary", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#preview", TextArea).border_title = "Containerfile"
        self.query_one("#tree").border_title = "Context"
        self.query_one(SummaryCard).border_title = "Security vs speed"
        self.query_one("#tree").focus()
        if find_containerfile(self.start_dir) is not None:
            self.select_context(self.start_dir)

    # -- the context and its Containerfile ------------------------------------------------------
    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        self.select_context(event.path)

    def select_context(self, path: Path) -> None:
        self.context = path.resolve()
        shown = self.services.show_path(self.context)
        self.query_one("#context-label", Label).update(Text(f"Context  {visible(shown)}"))
        # Suggest pushing under the name the image gets locally (localhost/buildcage/NAME).
        repository = parse_reference(default_tag(self.context)).repository
        self.query_one(PushTargetField).set_repository(repository)
        self.query_one(ContainerfileFields).set_context(self.context)

    def on_containerfile_fields_loaded(self, event: ContainerfileFields.Loaded) -> None:
        self.query_one("#preview", TextArea).text = visible(event.text)
        if event.path is None:
            self.query_one(SummaryCard).show_hint(event.text)
        else:
            self.schedule_summary()

    # -- the request and the summary card -------------------------------------------------------
    def request(self, *, profile_only: bool = False) -> BuildRequest:
        """The form as a request; raises PlanError saying which field is wrong. The summary
        needs only the context, file and profile, so typing elsewhere cannot break it."""
        if self.context is None:
            raise PlanError("pick a context directory first (◆ marks those with a Containerfile)")
        fields = self.query_one(ContainerfileFields)
        profile = str(self.query_one("#profile", Select).value)
        base = BuildRequest(self.context, profile, containerfile=fields.containerfile,
                            session=self.query_one("#session", Checkbox).value)
        if profile_only:
            return base
        field = self.query_one(PushTargetField)
        if field.problem:
            raise PlanError(f"push target: {field.problem}")
        return replace(base, push=field.value, build_args=fields.build_args(),
                       secrets=fields.secrets(), target_stage=fields.target_stage,
                       no_cache=self.query_one("#no-cache", Checkbox).value,
                       on="kube" if self.query_one("#on-kube", Checkbox).value else "local",
                       load=self.query_one("#load", Checkbox).value,
                       session=self.query_one("#session", Checkbox).value)

    @on(Select.Changed, "#profile")
    @on(Checkbox.Changed, "#session")
    def schedule_summary(self) -> None:
        name = str(self.query_one("#profile", Select).value)
        if name in self.engine.profiles.names():
            kept = self.engine.profiles.get(name).keeps_cache
            self.query_one(PushTargetField).set_store_kept(kept)
        if self.context is None:
            return
        self._serial += 1
        if self._summary_timer is not None:
            self._summary_timer.stop()
        profile = str(self.query_one("#profile", Select).value)
        self.query_one(SummaryCard).show_loading(profile)
        serial = self._serial
        self._summary_timer = self.set_timer(SUMMARY_DEBOUNCE_S, lambda: self._summary(serial))

    def _summary(self, serial: int) -> None:
        try:
            request = self.request(profile_only=True)
        except PlanError as exc:
            self.query_one(SummaryCard).show_error(str(exc))
            return
        self._load_summary(serial, request)

    @work(thread=True, exclusive=True, group="summary")
    def _load_summary(self, serial: int, request: BuildRequest) -> None:
        try:
            # Only a look: nothing runs, so the confirmation is not needed yet.
            plan = self.engine.plan_for(request, confirmed=True)
            summary = (self.engine.summary(plan, session=True) if request.session
                       else self.engine.summary(plan))
        except Exception as exc:  # noqa: BLE001 - PlanError, podman down...: all shown in the card
            self.post_message(self.SummaryReady(serial, None, str(exc) or type(exc).__name__))
            return
        self.post_message(self.SummaryReady(serial, summary))

    def on_session_screen_summary_ready(self, event: SummaryReady) -> None:
        if event.serial != self._serial:
            return  # the form changed since this check started
        card = self.query_one(SummaryCard)
        if event.summary is None:
            card.show_error(f"✗ {event.error}")
        else:
            card.show_summary(event.summary)

    # -- actions --------------------------------------------------------------------------------
    def _checked_request(self) -> BuildRequest | None:
        try:
            return self.request()
        except PlanError as exc:
            show_error(self, exc)
            return None

    @on(Button.Pressed, "#build")
    def action_build(self) -> None:
        request = self._checked_request()
        if request is not None:
            self.confirm_then([request.profile],
                              lambda confirmed: self.post_message(
                                  BuildRequested(request, confirmed)))

    def action_plan(self) -> None:
        request = self._checked_request()
        if request is not None:
            self._prepare_plan(request)

    @work(thread=True, exclusive=True, group="plan")
    def _prepare_plan(self, request: BuildRequest) -> None:
        """The plan as the build would run it, its files written so that the command and the
        manifest shown run as copied. Only a look: the confirmation and the registry check
        wait for the build itself."""
        try:
            prepared = self.engine.prepare(request, confirmed=True, check_push=False)
        except UserError as exc:
            self.app.call_from_thread(show_error, self, exc, "Cannot plan")
            return
        self.app.call_from_thread(self._show_plan, prepared.plan)

    def _show_plan(self, plan: BuildPlan) -> None:
        from tui.screens.plan_view import PlanViewScreen

        self.app.push_screen(PlanViewScreen(plan.without_snapshot()))  # to paste, run later

    @on(CompareAsked)
    def action_compare(self) -> None:
        request = self._checked_request()
        if request is not None:
            self.post_message(CompareRequested(request))
