"""Integration fixtures: the real podman service, the real registry, real builds.

The session fixture runs the provisioning (idempotent, quick when the host is ready), so these
tests run on a fresh machine too. No mock stands in for podman here.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.engine.config import load_config
from tui.engine.history import History
from tui.engine.overlay import ensure_probe
from tui.engine.session import Engine

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def provisioned() -> None:
    """Runs the provisioning, unless BUILDCAGE_TEST_PROVISIONED=1 says another run provisions
    this (shared) machine: then the builder image is waited for, never built here."""
    if os.environ.get("BUILDCAGE_TEST_PROVISIONED") == "1":
        image = "localhost/buildcage/builder:latest"
        deadline = time.time() + 600
        while subprocess.run(["podman", "image", "exists", image]).returncode != 0:
            assert time.time() < deadline, f"{image} never appeared"
            time.sleep(5)
        return
    subprocess.run(["bash", str(ROOT / "provision" / "provision.sh")], check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Stores, generated conf files and history of this test session, apart from the user's."""
    path = tmp_path_factory.mktemp("xdg-data")
    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = old


@pytest.fixture(scope="session")
def engine(provisioned: None, data_home: Path) -> Engine:
    engine = Engine(load_config(), History(data_home / "history.sqlite3"))
    # The kernel overlay probe, recorded once: every plan of the session chooses its overlay
    # alike, whichever test comes first (a build would probe it on its own).
    ensure_probe(engine.client(), engine.config.builder_image, data_home / "buildcage")
    return engine


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:8]
