"""--load against real podman: the built image lands in the host's own store through the
podman API and `podman run` prints what the image should, in a profile whose builder is the
host's root (host-ro) and in one with its own user namespace (isolated); a host tag that names
another image is never moved unless asked, neither before the build nor at the load itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from podman_helpers import EXAMPLES, ROOT, Recorder

from tui.engine.config import data_dir
from tui.engine.events import Failed, ImageBuilt, ImageLoaded, LoadRefused
from tui.engine.request import BuildRequest
from tui.engine.stores import leftovers

BASE = "127.0.0.1:5000/buildcage/busybox:latest"
GREETING = (EXAMPLES / "hello" / "greeting.txt").read_text()


@pytest.fixture(autouse=True)
def _real_host(provisioned, data_home):
    """Provisioned host; stores and history in this session's data directory (via XDG)."""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def host_id(name: str) -> str:
    """The id the host's podman gives ``name`` ("" when it has no such image)."""
    out = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", name],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def remove(*names: str) -> None:
    for name in names:
        if name and host_id(name):
            subprocess.run(["podman", "rmi", name], capture_output=True)


def podman_run(name: str) -> str:
    out = subprocess.run(["podman", "run", "--rm", name], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("profile", ["host-ro", "isolated"])
def test_a_loaded_image_runs_on_the_host_at_once(run_id, profile):
    tag = f"localhost/buildcage-it/load-{profile}-{run_id}:1"
    try:
        # --no-cache: a host-ro build may otherwise reuse an image of the host's store whole
        # (Buildah's cache looks into the read-only store too), and the load would only name it.
        out = cli("build", str(EXAMPLES / "hello"), "--profile", profile, "--tag", tag,
                  "--load", "--json", "--no-cache", "--project", f"load-{run_id}")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr
        seen = events(out.stdout)
        built = next(e["image_id"] for e in seen if e["event"] == "image_built")
        loaded = [e for e in seen if e["event"] == "image_loaded"]
        assert [(e["image_id"], e["tag"], e["tags"]) for e in loaded] == [(built, tag, [tag])]
        assert seen[-1]["event"] == "done" and seen[-1]["loaded"] == tag
        assert host_id(tag) == built  # the host's podman has it, under the build's image id
        assert podman_run(tag) == GREETING
        # The archive went with the build's directory; nothing else of the build is left.
        build_id = next(e["build_id"] for e in seen if e["event"] == "build_started")
        assert not (data_dir() / "builds" / build_id).exists()
    finally:
        remove(tag)


def test_a_host_tag_naming_another_image_moves_only_when_asked(run_id, tmp_path):
    tag = f"localhost/buildcage-it/taken-{run_id}:1"
    base_id = host_id(BASE)
    assert base_id, f"{BASE} is not in the host store (provisioning puts it there)"
    subprocess.run(["podman", "tag", BASE, tag], check=True)
    loaded: list[str] = []
    try:
        args = ["build", str(EXAMPLES / "hello"), "--tag", tag, "--project", f"taken-{run_id}"]
        refused = cli(*args, "--load")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "--load-overwrite" in refused.stderr and base_id[:12] in refused.stderr
        assert host_id(tag) == base_id

        asked = cli(*args, "--load-overwrite", "--json")
        assert asked.returncode == 0, asked.stderr
        first = next(e["image_id"] for e in events(asked.stdout) if e["event"] == "image_loaded")
        loaded.append(first)
        assert host_id(tag) == first != base_id
        assert host_id(BASE) == base_id  # the other image keeps its own names

        # Now buildcage put the tag there: an edited rebuild moves it without asking.
        context = tmp_path / "hello"
        shutil.copytree(EXAMPLES / "hello", context)
        context.chmod(0o755)
        (context / "greeting.txt").write_text("edited, rebuilt, loaded again\n")
        again = cli("build", str(context), "--tag", tag, "--load", "--json")
        assert again.returncode == 0, again.stderr
        second = next(e["image_id"] for e in events(again.stdout) if e["event"] == "image_loaded")
        loaded.append(second)
        assert host_id(tag) == second != first
        assert podman_run(tag) == "edited, rebuilt, loaded again\n"
    finally:
        remove(tag, *loaded)


def test_a_tag_taken_while_building_is_not_moved_and_nothing_is_loaded(engine, run_id):
    tag = f"localhost/buildcage-it/race-{run_id}:1"
    prepared = engine.prepare(BuildRequest(EXAMPLES / "hello", "host-ro", tag=tag, load=True,
                                           project=f"race-{run_id}"))
    subprocess.run(["podman", "tag", BASE, tag], check=True)  # someone takes it meanwhile
    try:
        rec = Recorder()
        engine.start(prepared, rec).run()
        assert rec.done.status == "failed" and rec.done.loaded == ""
        built = rec.of(ImageBuilt)[0].image_id
        assert [(r.tag, r.image_id, r.host_image_id) for r in rec.of(LoadRefused)] == [
            (tag, built, host_id(BASE))]
        assert "--load-overwrite" in rec.of(Failed)[-1].message
        assert rec.of(ImageLoaded) == []
        assert host_id(tag) == host_id(BASE)
        assert host_id(built) == ""  # refused before loading: not even an untagged copy
        assert not Path(prepared.plan.build_dir).exists()
    finally:
        remove(tag)


def test_a_finished_build_loads_later_from_its_store(engine, run_id):
    """The TUI's key after a build without --load: a short-lived container on the build's
    store exports the image by id, and the same load follows."""
    tag = f"localhost/buildcage-it/later-{run_id}:1"
    plan = engine.plan(EXAMPLES / "hello", profile="host-ro", tag=tag, no_cache=True,
                       project=f"later-{run_id}")
    rec = Recorder()
    engine.runner(plan, rec).run()
    assert rec.done.status == "succeeded" and rec.done.loaded == ""
    built = rec.done.image_id
    assert host_id(built) == ""
    try:
        loaded = engine.load_built(plan, built)
        assert (loaded.image_id, loaded.tag, loaded.tags) == (built, tag, (tag,))
        assert podman_run(tag) == GREETING
        assert not plan.build_dir.exists()
        assert leftovers(engine.client(), plan.build_id) == []
        assert engine.loaded_before(tag, built)  # history remembers it for the tag rule
    finally:
        remove(tag)
