"""The profile's security-versus-speed card: ratings with reasons and the facts behind them.

Facts are read from a real builder container (created, never started) by a worker; the card
only shows what it is given: nothing yet, "checking…", an error, or a ProfileSummary.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from rich.text import Text
from textual.reactive import reactive

from tui.engine.facts import MountFact, SecurityFacts, describe_network
from tui.engine.summary import ProfileSummary, Rating
from tui.engine.text import visible
from tui.widgets.parts import PartsWidget

LOADING = "checking on a real container…"


def dots(score: int) -> str:
    return "●" * score + "○" * (5 - score)


def mount_line(mount: MountFact) -> str:
    mode = "ro" if mount.read_only else "rw"
    if mount.kind == "overlay":
        mode = "ro+overlay"  # the builder writes to its own upper layer, never to the source
    source = mount.source
    if mount.kind == "volume" and source.endswith("/_data"):
        source = "volume " + PurePosixPath(source).parent.name
    # The target first: it is short and says what the builder sees; the host path may wrap.
    return f"{mode} {mount.target} ← {source}"


def fact_rows(facts: SecurityFacts) -> list[tuple[str, str]]:
    caps = " ".join(facts.effective_caps) or "none"
    dropped = f" (dropped {' '.join(facts.cap_drop)})" if facts.cap_drop else ""
    limits = " ".join([f"pids={facts.pids_limit}", *facts.ulimits])
    rows = [
        ("privileged", "yes" if facts.privileged else "no"),
        ("capabilities", f"{len(facts.effective_caps)}: {caps}{dropped}"),
        ("SELinux", facts.selinux),
        ("seccomp", facts.seccomp),
        ("user ns", facts.userns),
        ("host store", facts.host_store + (f" via {', '.join(facts.host_store_via)}"
                                           if facts.host_store_via else "")),
        ("engine socket", ", ".join(facts.engine_sockets) or "none"),
        ("network", describe_network(facts.network)),
        ("devices", ", ".join(facts.devices) or "none"),
        ("overlay", facts.overlay or "unknown"),
        ("limits", limits),
    ]
    mounts = [mount_line(m) for m in facts.mounts] or ["none"]
    rows += [("mounts" if i == 0 else "", line) for i, line in enumerate(mounts)]
    return rows


class SummaryCard(PartsWidget, can_focus=True):
    """Focusable so a keyboard user can scroll to it and read it; it takes no keys itself."""

    PARTS = "summary-card"

    COMPONENT_CLASSES = {
        "summary-card--title", "summary-card--label", "summary-card--muted",
        "summary-card--good", "summary-card--mid", "summary-card--bad", "summary-card--error",
    }

    summary: reactive[ProfileSummary | None] = reactive(None, layout=True)
    message: reactive[str] = reactive("pick a context directory (◆ has a Containerfile)",
                                      layout=True)
    """Shown instead of a summary: a hint, the loading text or an error."""
    error: reactive[bool] = reactive(False)

    def show_loading(self, profile: str) -> None:
        self.summary, self.error, self.message = None, False, f"{profile}: {LOADING}"

    def show_error(self, message: str) -> None:
        self.summary, self.error, self.message = None, True, message

    def show_hint(self, message: str) -> None:
        self.summary, self.error, self.message = None, False, message

    def show_summary(self, summary: ProfileSummary) -> None:
        self.error, self.summary = False, summary

    def _rating(self, text: Text, label: str, rating: Rating) -> None:
        grade = "good" if rating.score >= 4 else "mid" if rating.score == 3 else "bad"
        text.append(f"\n{label:<9}", self.part("label"))
        text.append(dots(rating.score), self.part(grade))
        text.append(f" {rating.score}/5")
        for reason in rating.reasons:
            text.append(f"\n  · {reason}")

    def render(self) -> Text:
        summary = self.summary
        if summary is None:
            style = self.part("error" if self.error else "muted")
            return Text(visible(self.message), style=style)
        profile = summary.profile
        text = Text()
        text.append(profile.name, self.part("title"))
        text.append(f" · {profile.summary}", self.part("muted"))
        if profile.requires_confirmation:
            text.append("\n⚠ asks for confirmation before it runs:", self.part("bad"))
            for risk in profile.risks():
                text.append(f"\n  ⚠ {risk.text}", self.part("bad"))
        self._rating(text, "Security", summary.security)
        self._rating(text, "Speed", summary.speed)
        text.append("\nFacts, read from a real builder container:", self.part("label"))
        for label, value in fact_rows(summary.facts):
            text.append(f"\n  {label:<15}", self.part("muted"))
            text.append(visible(value))
        text.append(f"\n{'Median':<9}", self.part("label"))
        if summary.median_s is None:
            text.append("no finished build of this context with this profile yet",
                        self.part("muted"))
        else:
            text.append(f"{summary.median_s:.1f}s (recent builds of this context)")
        text.append("\nF2 shows the podman run command and the Kubernetes manifest",
                    self.part("muted"))
        return text
