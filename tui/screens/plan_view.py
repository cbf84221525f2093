"""The plan as text to paste elsewhere: the equivalent ``podman run`` and a Kubernetes Pod."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Label, TabbedContent, TabPane, TextArea

from tui.engine.plan import BuildPlan
from tui.engine.renderings import NoPodForm, kube_manifest, podman_run
from tui.engine.text import visible
from tui.screens.base import Dialog
from tui.styles_path import css_path

TABS = {"podman": "podman run", "kube": "Kubernetes"}


class PlanViewScreen(Dialog[None]):
    CSS_PATH = css_path("plan_view.tcss")
    BINDINGS = [
        Binding("c", "copy", "Copy"),
        Binding("p", "show('podman')", "podman run"),
        Binding("k", "show('kube')", "Kubernetes"),
        Binding("escape,q", "dismiss", "Close"),
    ]

    def __init__(self, plan: BuildPlan, initial: str = "podman") -> None:
        super().__init__()
        try:
            kube = kube_manifest(plan)
        except NoPodForm as exc:  # host-ro: the tab says why there is no Pod
            kube = "".join(f"# {line}\n" for line in textwrap.wrap(str(exc), 90))
        self.texts = {"podman": podman_run(plan), "kube": kube}
        self.initial = initial
        self.title_text = f"{plan.profile.name} · {plan.context.name}"

    def compose(self) -> ComposeResult:
        with Vertical(id="plan-dialog"):
            yield Label(Text(f"The same build, elsewhere · {visible(self.title_text)}"),
                        id="plan-title")
            with TabbedContent(initial=self.initial, id="plan-tabs"):
                for key, title in TABS.items():
                    with TabPane(title, id=key):
                        yield TextArea(self.texts[key], read_only=True, soft_wrap=False,
                                       id=f"{key}-text")
            yield Footer()

    def action_show(self, key: str) -> None:
        self.query_one(TabbedContent).active = key

    def action_copy(self) -> None:
        active = self.query_one(TabbedContent).active or self.initial
        self.app.copy_to_clipboard(self.texts[active])
        self.notify(f"{TABS[active]} copied to the clipboard")
