"""Helpers for the integration tests (imported by the test modules)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tui.engine.events import Done, Event
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


def build(engine: Engine, context: Path | str, **options) -> Recorder:
    recorder = Recorder()
    plan = engine.plan(context, **options)
    engine.runner(plan, recorder).run()
    return recorder


def registry_digest(repository: str, tag: str) -> str:
    """The manifest digest the local registry serves for repository:tag."""
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Docker-Content-Digest"]


def registry_tags(repository: str) -> list[str]:
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=5) as r:
        return json.load(r).get("tags") or []
