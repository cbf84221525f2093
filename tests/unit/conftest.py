"""Unit tests never pick up this machine's registry credentials: a plan finds an auth file only
where a test puts one (REGISTRY_AUTH_FILE)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_host_authfile(monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.engine.planner as planner

    def only_from_the_environment() -> Path | None:
        given = os.environ.get("REGISTRY_AUTH_FILE", "")
        return Path(given) if given and Path(given).is_file() else None

    monkeypatch.setattr(planner, "find_authfile", only_from_the_environment)
