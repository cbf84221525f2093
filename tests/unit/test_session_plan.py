"""A session builder's containers come from the build's own plan (tui.engine.session_plan), and
its sweep never takes a session a build holds (tui.engine.session_builder.sweep)."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.plan import SECRETS_DIR, BuildPlan
from tui.engine.planner import make_plan
from tui.engine.session_builder import Record, sweep
from tui.engine.session_files import inbox_identity, make_inbox, make_session_dir
from tui.engine.session_plan import (
    LOG_SIZE_MAX,
    PHASES,
    RUN_INBOX,
    SESSION_LABEL,
    all_kwargs,
    command_text,
    container_kwargs,
    drift,
    refusal,
    session_plan,
)

SID = "s0123456789a"


pytestmark = pytest.mark.usefixtures("data_home")


def plan(context: Path, **options: Any) -> BuildPlan:
    return make_plan(context, config=Config(), project="p", **options)


def test_the_session_containers_are_the_phases_own_with_a_read_only_root_and_the_inbox(
        context, tmp_path):
    built = plan(context, profile="host-ro")
    splan = session_plan(built, SID, tmp_path / "s")
    one_shot = {phase: _create(splan, phase) for phase in PHASES}
    for phase in PHASES:
        kwargs = container_kwargs(splan, phase, tmp_path / "inbox")
        assert kwargs["command"] == list(RUN_INBOX)
        assert kwargs["read_only"] is True
        assert kwargs["log_config"] == {"Type": "k8s-file", "Config": {"size": LOG_SIZE_MAX}}
        assert kwargs["network_mode"] == ("none" if phase == "build" else "host")
        assert kwargs["labels"][SESSION_LABEL] == SID and "buildcage.owner" not in kwargs["labels"]
        assert {"type": "bind", "source": str(tmp_path / "inbox" / phase),
                "target": SECRETS_DIR, "read_only": True} in kwargs["mounts"]
        assert {m["target"] for m in kwargs["mounts"] if m["type"] == "tmpfs"} == {
            "/run", "/tmp", "/var/tmp"}
        # Everything else is what the one-shot phase container of the same plan gets.
        same = {k: v for k, v in kwargs.items() if k not in ("command", "labels", "mounts",
                                                              "read_only", "log_config")}
        assert same == {k: v for k, v in one_shot[phase].items()
                        if k not in ("command", "labels", "mounts")}
        assert one_shot[phase]["mounts"] == kwargs["mounts"][:len(one_shot[phase]["mounts"])]


def _create(splan: BuildPlan, phase: str) -> dict[str, Any]:
    from tui.engine.renderings import create_kwargs

    return create_kwargs(splan, phase)  # type: ignore[arg-type]


def test_what_each_build_brings_does_not_change_the_session_but_its_shape_does(
        context, tmp_path):
    secret = tmp_path / "tok"
    secret.write_text("x")
    base = plan(context, profile="host-ro")
    other = plan(context, profile="host-ro", build_args=(("A", "1"),), tag="t:1",
                 secrets=(("tok", str(secret)),), target_stage="", no_cache=True)
    key = all_kwargs(session_plan(base, SID, tmp_path / "s"), tmp_path / "i")
    assert all_kwargs(session_plan(other, SID, tmp_path / "s"), tmp_path / "i") == key
    assert drift(other, session_plan(other, SID, tmp_path / "s")) == ""
    assert json.loads(json.dumps(key)) == key
    smaller = dataclasses.replace(base, limits=dataclasses.replace(base.limits, pids=7))
    assert all_kwargs(session_plan(smaller, SID, tmp_path / "s"), tmp_path / "i") != key
    project = plan(context, profile="project")
    assert all_kwargs(session_plan(project, SID, tmp_path / "s"), tmp_path / "i") != key


def test_only_builds_on_a_kept_store_in_the_hosts_user_namespace_run_in_a_session(context):
    assert refusal(plan(context, profile="host-ro")) == ""
    assert refusal(plan(context, profile="project")) == ""
    assert "has a fresh store" in refusal(plan(context, profile="isolated"))
    assert "has a host store" in refusal(plan(context, profile="host-rw", confirmed=True))
    remote = dataclasses.replace(plan(context, profile="host-ro"), remote=True)
    assert "this machine" in refusal(remote)


def test_the_command_file_runs_exactly_the_phase_command() -> None:
    argv = ("sh", "-ec", "echo 'a b'; exec buildah bud --tag \"x\" $HOME ;")
    text = command_text(argv)
    assert text.startswith("exec ") and shlex.split(text)[1:] == list(argv)


class _Container:
    def __init__(self, sid: str, data: Path, status: str, cid: str, inbox: str = "") -> None:
        self.id = cid
        self.attrs = {"State": status, "Labels": {SESSION_LABEL: sid,
                                                  "buildcage.session-data": str(data),
                                                  "buildcage.session-inbox": inbox}}
        self.removed = False

    def reload(self) -> None:  # inspect's state is an object (a list's, a word)
        state = self.attrs["State"]
        self.attrs = {**self.attrs, "State": state if isinstance(state, dict)
                      else {"Status": state}}

    def remove(self, force: bool = False) -> None:
        self.removed = True


class _Client:
    def __init__(self, containers: list[_Container]) -> None:
        self.all = containers
        outer = self

        class Containers:
            def list(self, **_: Any) -> list[_Container]:
                return [c for c in outer.all if not c.removed]

            def get(self, cid: str) -> Any:
                (found,) = [c for c in outer.all if c.id == cid]
                full = _Container("", Path(), "", cid)
                full.attrs = {"State": {"Status": "exited"}}
                full.remove = found.remove  # type: ignore[method-assign]
                return full

        self.containers = Containers()


def _session(data: Path, sid: str, idle_timeout: float, used_ago: float) -> Path:
    folder = make_session_dir(data, sid)
    inbox = make_inbox(sid, PHASES, data)
    record = Record(id=sid, profile="host-ro", project="p", created=0.0,
                    idle_timeout=idle_timeout, inbox=str(inbox), kwargs={},
                    containers={"build": sid + "-b"}, inbox_id=inbox_identity(inbox))
    (folder / "record.json").write_text(json.dumps(dataclasses.asdict(record)))
    (folder / "used").touch()
    then = time.time() - used_ago
    os.utime(folder / "used", (then, then))
    return folder


def test_a_sweep_takes_idle_and_abandoned_sessions_never_one_a_build_holds(tmp_path):
    data = tmp_path / "data"
    idle, fresh, held, abandoned = ("s" + c * 11 for c in "1234")
    _session(data, idle, idle_timeout=60, used_ago=120)
    _session(data, fresh, idle_timeout=60, used_ago=1)
    held_dir = _session(data, held, idle_timeout=60, used_ago=120)
    _session(data, abandoned, idle_timeout=600, used_ago=1)
    inbox = make_inbox("s" + "6" * 11, PHASES)  # a lost session's, named by its label
    client = _Client([_Container(idle, data, "exited", idle + "-b"),
                      _Container(fresh, data, "exited", fresh + "-b"),
                      _Container(held, data, "running", held + "-b"),
                      _Container(abandoned, data, "running", abandoned + "-b"),
                      _Container("s" + "5" * 11, tmp_path / "other", "running", "x"),
                      _Container("s" + "6" * 11, tmp_path / "gone", "exited", "y",
                                 str(inbox))])
    make_session_dir(tmp_path / "other", "s" + "5" * 11)  # another data directory's: spared
    with open(held_dir / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a build runs in it (idle stamp or not)
        removed, left = sweep(client, data, stop_timeout=0.0)
        assert sorted(removed) == sorted([f"session {idle} (idle)",
                                          f"session {abandoned} (its build's process is gone)",
                                          f"session {'s' + '6' * 11} (its data directory is "
                                          "gone)"])
        assert left == []
        assert held_dir.exists() and not (data / "sessions" / idle).exists()
        assert [c.id for c in client.all if c.removed] == [idle + "-b", abandoned + "-b", "y"]
        assert not inbox.exists()
        assert sweep(client, data, everything=True, stop_timeout=0.0)[0] == [
            f"session {fresh} (asked)"]
    assert sweep(client, data, everything=True, stop_timeout=0.0)[0] == [
        f"session {held} (asked)"]


def test_a_container_listed_as_running_but_exited_is_no_killed_build(tmp_path):
    """A build ends at its container's exit file, before podman's clean-up; a list of
    containers may still say "running" then (podman 5's does not sync the state; 4's does). A
    sweep by another process in that moment would take the session for one whose build's
    process was killed, and remove it: it looks again (an inspect syncs the state)."""
    data = tmp_path / "data"
    sid = "s" + "7" * 11
    _session(data, sid, idle_timeout=600, used_ago=1)
    listed = _Container(sid, data, "running", sid + "-b")

    def inspect_says_exited() -> None:
        listed.attrs = {**listed.attrs, "State": {"Status": "exited"}}

    listed.reload = inspect_says_exited  # type: ignore[method-assign]
    client = _Client([listed])
    assert sweep(client, data, stop_timeout=0.0) == ([], [])
    assert not listed.removed and (data / "sessions" / sid).exists()


def test_looking_again_leaves_the_list_s_view_of_the_container_to_the_rest_of_the_sweep(
        tmp_path):
    """The sweep reads a listed container's labels where a list puts them (``Labels``), to
    find a lost session's inbox; an inspect puts them elsewhere (``Config.Labels``)."""
    from tui.engine.session_builder import _running

    listed = _Container("s" + "8" * 11, tmp_path, "running", "c8", inbox="/dev/shm/x")
    before = dict(listed.attrs)

    def inspect() -> None:
        listed.attrs = {"State": {"Status": "exited"}, "Config": {"Labels": {}}}

    listed.reload = inspect  # type: ignore[method-assign]
    assert _running(listed) is False
    assert listed.attrs == before
