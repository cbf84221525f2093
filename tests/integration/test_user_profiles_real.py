"""User profiles from a TOML config choose user namespace, capabilities and storage settings;
the example config's profiles build for real."""

from __future__ import annotations

import pytest
from podman_helpers import EXAMPLES, ROOT, build

from tui.engine.config import load_config
from tui.engine.events import PullStarted
from tui.engine.history import History
from tui.engine.session import Engine


@pytest.fixture(scope="module")
def user_engine(provisioned, data_home) -> Engine:
    config = load_config(ROOT / "examples" / "config.toml")
    return Engine(config, History(data_home / "history-user.sqlite3"))


def test_kernel_overlay_in_a_user_namespace(user_engine):
    plan = user_engine.plan(EXAMPLES / "multistage", profile="isolated-fast", no_cache=True)
    assert "mount_program" not in plan.storage_conf()
    facts = user_engine.summary(plan).facts
    assert "SYS_ADMIN" in facts.effective_caps and facts.userns.startswith("0:")
    rec = build(user_engine, EXAMPLES / "multistage", profile="isolated-fast", no_cache=True)
    assert rec.done.status == "succeeded" and rec.done.steps_total == 12


def test_extra_store_serves_base_images_without_a_pull(user_engine, run_id):
    rec = build(user_engine, EXAMPLES / "hello", profile="team-cache", project=f"tc-{run_id}")
    assert rec.done.status == "succeeded"
    assert rec.of(PullStarted) == []
