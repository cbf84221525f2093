"""Helpers for the integration tests (imported by the test modules)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

from tui.engine.events import BuildStarted, Done, Event
from tui.engine.plan import BuildPlan
from tui.engine.session import Engine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
REGISTRY = "127.0.0.1:5000"


class Recorder:
    """Collects every event of a build, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def done(self) -> Done:
        last = self.events[-1]
        assert isinstance(last, Done), last
        return last

    @property
    def build_id(self) -> str:
        """The build's id, from its BuildStarted (warnings may come first: what the start of a
        build collected of dead builds, a wait for a project's store)."""
        started = self.of(BuildStarted)
        assert started, self.events[:5]
        return started[0].build_id


class Background:
    """A build running on its own thread, with its recorder, for cancel and outage tests."""

    def __init__(self, engine: Engine, plan: BuildPlan, session: bool = False) -> None:
        self.plan = plan
        self.rec = Recorder()
        self.runner = engine.runner(plan, self.rec, session=session)
        self.thread = threading.Thread(target=self.runner.run)
        self.thread.start()

    def wait_for_line(self, text: str = "started", timeout: float = 60.0) -> None:
        """Until the build printed ``text`` (the test contexts' RUNs print "started")."""
        deadline = time.time() + timeout
        while not any(getattr(e, "line", None) == text for e in list(self.rec.events)):
            assert time.time() < deadline, f"the build never printed {text!r}"
            time.sleep(0.1)

    def join(self, timeout: float = 60.0) -> Done:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the build did not end"
        return self.rec.done


def build(engine: Engine, context: Path | str, session: bool = False, **options) -> Recorder:
    """One build of ``context`` (``session``: in a session builder, tui.engine.session_runner)."""
    recorder = Recorder()
    plan = engine.plan(context, **options)
    engine.runner(plan, recorder, session=session).run()
    return recorder


AUTHFILE = Path("/root/.config/containers/auth.json")
"""Where provisioning keeps the local registry's credentials (it requires them)."""


def registry_auth() -> dict[str, str]:
    """The Authorization header for the local registry, from the provisioned auth file."""
    auths = json.loads(AUTHFILE.read_text()).get("auths", {})
    return {"Authorization": f"Basic {auths[REGISTRY]['auth']}"}


def registry_digest(repository: str, tag: str) -> str:
    """The manifest digest the local registry serves for repository:tag."""
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json",
                 **registry_auth()})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Docker-Content-Digest"]


def registry_tags(repository: str) -> list[str]:
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{repository}/tags/list",
                                     headers=registry_auth())
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.load(r).get("tags") or []
