"""User profiles from a TOML config choose user namespace, capabilities and storage settings;
the example config's profiles build for real; dangerous profiles are refused or must be
confirmed, and what a builder really reaches is read from the container podman created."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from podman_helpers import EXAMPLES, ROOT, build

from tui.engine.config import Config, ConfigError, load_config
from tui.engine.events import PullStarted
from tui.engine.history import History
from tui.engine.profiles import Profile
from tui.engine.session import Engine
from tui.engine.stores import leftovers
from tui.engine.summary import security_rating

HOST_STORE = "/var/lib/containers/storage"


@pytest.fixture(scope="module")
def user_engine(provisioned, data_home) -> Engine:
    config = load_config(ROOT / "examples" / "config.toml")
    return Engine(config, History(data_home / "history-user.sqlite3"))


def config_with(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def test_the_example_profile_keeps_fuse_overlayfs(user_engine):
    """overlay = "fuse" wins over the probe: the builder gets fuse-overlayfs and /dev/fuse,
    read back from the container podman created (tests/integration/test_overlay_real.py
    builds with both overlays)."""
    plan = user_engine.plan(EXAMPLES / "multistage", profile="isolated-fuse", no_cache=True)
    assert plan.overlay == "fuse" and "mount_program" in plan.storage_conf()
    summary = user_engine.summary(plan)
    facts = summary.facts
    assert facts.overlay == "fuse-overlayfs (/usr/bin/fuse-overlayfs)"
    assert facts.devices == ("/dev/fuse",)
    assert "SYS_ADMIN" not in facts.effective_caps and facts.userns.startswith("0:")
    assert "fuse-overlayfs, slower than the kernel's overlay: the profile asks for " \
        "fuse-overlayfs" in summary.speed.reasons


def test_extra_store_serves_base_images_without_a_pull(engine, data_home, tmp_path, run_id):
    # A team store: here, another project's store that already holds the base image.
    first = build(engine, EXAMPLES / "hello", profile="project", project=f"team-{run_id}")
    assert first.done.status == "succeeded"
    team_store = data_home / "buildcage" / "stores" / "project" / f"team-{run_id}" / "storage"
    assert (team_store / "overlay-images").is_dir()
    config = config_with(tmp_path, f'[profiles.team-cache]\nbase = "project"\n'
                                   f'extra_stores = ["{team_store}"]\n')
    team = Engine(config, engine.history)
    assert not team.profiles.get("team-cache").requires_confirmation
    rec = build(team, EXAMPLES / "hello", profile="team-cache", project=f"tc-{run_id}")
    assert rec.done.status == "succeeded"
    assert rec.of(PullStarted) == []


def test_an_extra_store_of_the_root_is_refused_and_its_facts_show_the_socket(engine, tmp_path):
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, '[profiles.everything]\nextra_stores = ["/"]\n')
    assert "profiles.everything.extra_stores: / is refused: it holds the engine socket " \
        "/run/podman/podman.sock" in str(info.value)
    # Were it created anyway (a profile built in code, past the config check), the facts read
    # from the container podman creates say the socket is reachable, and the rating is 1/5.
    plan = engine.plan(EXAMPLES / "hello", profile="project")
    root = Profile(name="everything", summary="mounts /", store="project",
                   extra_stores=("/",), builtin=False)
    plan = replace(plan, profile=root)
    summary = engine.summary(plan)
    assert "/run/podman/podman.sock as /var/lib/shared-1/run/podman/podman.sock" in \
        summary.facts.engine_sockets
    assert summary.facts.host_store == "read-only"
    assert summary.security.score == 1
    assert leftovers(engine.client(), plan.build_id) == []


def test_all_capabilities_are_refused_and_would_rate_one(engine, tmp_path):
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path, '[profiles.all]\ncap_add = ["ALL"]\n')
    assert "profiles.all.cap_add: ALL is refused" in str(info.value)
    plan = engine.plan(EXAMPLES / "hello", profile="project")
    plan = replace(plan, profile=replace(plan.profile, name="all", cap_add=("ALL",)))
    facts = engine.summary(plan).facts
    assert "SYS_ADMIN" in facts.effective_caps and "SYS_MODULE" in facts.effective_caps
    assert security_rating(facts).score == 1


def test_a_symlink_to_the_host_store_is_host_store_access(engine, tmp_path):
    link = tmp_path / "team-store"
    link.symlink_to(HOST_STORE)
    config = config_with(tmp_path, f'[profiles.sneaky]\nbase = "project"\n'
                                   f'extra_stores = ["{link}"]\n')
    sneaky = Engine(config, engine.history)
    profile = sneaky.profiles.get("sneaky")
    assert profile.requires_confirmation
    assert [r.text for r in profile.risks()] == [
        f"its extra store {link} is the host's image store (through the symlink to "
        f"{HOST_STORE}): it sees every host image"]
    plan = sneaky.plan(EXAMPLES / "hello", profile="sneaky", confirmed=frozenset({"unsafe"}))
    summary = sneaky.summary(plan)
    assert summary.facts.host_store == "read-only"
    assert summary.facts.host_store_via == ("/var/lib/shared-1",)
    assert any("reads the host's image store (read-only, through /var/lib/shared-1)" in r
               for r in summary.security.reasons)
