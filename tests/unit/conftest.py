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


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of the test's own (XDG_DATA_HOME): stores, sessions, history. Modules
    that plan builds take it for every test (``pytestmark = usefixtures("data_home")``)."""
    path = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(path))
    return path


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context: a Containerfile of the local registry's busybox and one RUN step (a
    module needing another context defines its own ``context``)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM 127.0.0.1:5000/buildcage/busybox:latest\nRUN true\n")
    return ctx
