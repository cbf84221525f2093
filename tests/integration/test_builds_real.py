"""Real builds through the engine: every profile pushes, failures are named, no line is lost,
cancelling leaves nothing behind, and shared images are pinned while a build reads them."""

from __future__ import annotations

import json
import subprocess

import pytest
from podman_helpers import EXAMPLES, ROOT, Background, Recorder, build, registry_digest

from tui.engine.cache_reasons import FreshStore
from tui.engine.events import (
    CacheMiss,
    Committed,
    Failed,
    ImageBuilt,
    ImageInfo,
    LogLine,
    Pushed,
    PushStarted,
    StepStarted,
)
from tui.engine.renderings import create_kwargs
from tui.engine.stores import PIN_LABEL, leftovers

CONTEXTS = ROOT / "tests" / "data" / "contexts"


@pytest.mark.parametrize("name", ["host-ro", "isolated", "project", "host-rw"])
def test_every_profile_builds_hello_and_pushes(engine, run_id, name):
    repo, tag = f"it/hello-{name}", run_id
    # A project of its own: isolated's registry cache is per project, and an earlier run's
    # cache would turn this run's misses into hits.
    rec = build(engine, EXAMPLES / "hello", profile=name, confirmed=True,
                push=f"127.0.0.1:5000/{repo}:{tag}", project=f"hello-{run_id}")
    assert rec.done.status == "succeeded", [e for e in rec.of(Failed)]
    pushed = rec.of(Pushed)
    assert len(pushed) == 1 and len(rec.of(PushStarted)) == 1
    assert pushed[0].digest == registry_digest(repo, tag)
    assert rec.done.pushed == f"127.0.0.1:5000/{repo}:{tag}@{pushed[0].digest}"
    info = rec.of(ImageInfo)
    # base + COPY + RUN. isolated pushes its steps as the registry cache, so it commits per
    # step too; a fresh store without a cache commits once (test_plan_renderings.py).
    assert len(info) == 1 and len(info[0].layers) == 3
    assert leftovers(engine.client(), rec.build_id) == []
    if name == "isolated":  # a fresh store: every step ran, and that is why
        assert [m.reasons for m in rec.of(CacheMiss)] == [(FreshStore(profile="isolated"),)] * 3


def test_broken_fails_naming_the_step(engine):
    rec = build(engine, EXAMPLES / "broken", profile="host-ro")
    assert rec.done.status == "failed"
    failed = rec.of(Failed)
    assert len(failed) == 1
    assert failed[0].step == 'RUN echo "about to fail" && exit 3'
    assert failed[0].exit_code == 3
    assert leftovers(engine.client(), rec.build_id) == []


@pytest.mark.parametrize("use_log_file", [True, False], ids=["log-file", "api-poll"])
def test_the_runner_delivers_a_million_lines_in_order(engine, monkeypatch, use_log_file):
    """The runner's own path (create, start, read, wait, re-read, clean up) on a container that
    prints numbered lines itself: every one arrives, once, in order, the last included. A million
    through the log file; 200,000 through the API's log polling, the fallback where no log file
    can be read (a remote service), which reads at about a fifth of the speed (the same order
    bugs show at any count above one poll's worth; a million took 78 s of the suite there)."""
    count = 1_000_000 if use_log_file else 200_000
    import tui.engine.runner as runner_module

    def numbered(plan, phase=None, idmap=None):
        kwargs = create_kwargs(plan, phase, idmap)
        # The build phase prints the lines; the publish phase finds no image and says nothing.
        building = getattr(phase, "name", phase) in (None, "build")
        kwargs["command"] = ["seq", "1", str(count)] if building else ["true"]
        return kwargs

    monkeypatch.setattr(runner_module, "create_kwargs", numbered)
    numbers: list[int] = []
    failures: list[str] = []

    def keep(event):
        if isinstance(event, LogLine):
            numbers.append(int(event.line))
        elif isinstance(event, Failed):
            failures.append(event.message)

    plan = engine.plan(CONTEXTS / "million", profile="host-ro")
    runner = engine.runner(plan, keep)
    runner.use_log_file = use_log_file
    runner.run()
    assert numbers == list(range(1, count + 1))
    # seq builds no image, and the runner says so rather than calling it a success.
    assert failures == ["the builder exited without building an image"]


def test_a_million_line_build_arrives_in_order(engine):
    """Through Buildah: the lines arrive in order with no gap or duplicate, and the build's own
    lines after them are still parsed. Buildah's chroot runner (1.28 and 1.39 alike) sometimes
    drops the last pipe-full of a RUN's output under CPU load, before buildcage sees it; the
    runner test above proves buildcage loses nothing of what reaches the log."""
    rec = Recorder()
    numbers: list[int] = []

    def keep(event):
        if isinstance(event, LogLine):
            if event.line.isdigit():
                numbers.append(int(event.line))
        else:
            rec(event)

    plan = engine.plan(CONTEXTS / "million", profile="host-ro", no_cache=True)
    engine.runner(plan, keep).run()
    assert rec.done.status == "succeeded"
    assert numbers == list(range(1, len(numbers) + 1))
    assert 1_000_000 - len(numbers) < 12_000  # at most one 64 KiB pipe-full, if any
    assert [c.image for c in rec.of(Committed)] == [plan.tag]
    assert rec.of(ImageBuilt)[0].image_id == rec.done.image_id


def _start_slow(engine, **options) -> Background:
    running = Background(engine, engine.plan(CONTEXTS / "slow", no_cache=True, **options))
    running.wait_for_line("started")
    return running


@pytest.mark.parametrize("name", ["isolated", "host-ro"])
def test_cancel_leaves_no_container_store_or_pin(engine, name):
    running = _start_slow(engine, profile=name)
    plan, rec = running.plan, running.rec
    running.runner.cancel()
    assert running.join(30).status == "canceled"
    client = engine.client()
    assert leftovers(client, plan.build_id) == []
    assert client.containers.list(all=True, filters={"label": f"{PIN_LABEL}={plan.build_id}"}) == []
    assert not client.volumes.exists(plan.store_volume)
    assert rec.of(Failed) == []


def test_host_ro_pins_the_shared_base_image_while_building(engine, run_id):
    # A base image of its own, so that a failed pin could only ever delete this one.
    base = f"localhost/buildcage-it/pinned:{run_id}"
    subprocess.run(["podman", "build", "-q", "-t", base, "-"], check=True, text=True,
                   input=f"FROM 127.0.0.1:5000/buildcage/busybox:latest\nLABEL run={run_id}\n",
                   stdout=subprocess.DEVNULL)
    image_id = subprocess.run(["podman", "image", "inspect", "-f", "{{.Id}}", base], check=True,
                              capture_output=True, text=True).stdout.strip()
    try:
        running = _start_slow(engine, profile="host-ro", build_args=(("BASE", base),))
        plan, rec = running.plan, running.rec
        removal = subprocess.run(["podman", "rmi", image_id], capture_output=True, text=True)
        running.runner.cancel()
        running.join(30)
        assert removal.returncode != 0, "the base image could be removed mid-build"
        assert "container" in removal.stderr.lower()
        assert rec.done.status == "canceled"
        assert engine.client().containers.list(
            all=True, filters={"label": f"{PIN_LABEL}={plan.build_id}"}) == []
        assert [e.instruction for e in rec.of(StepStarted)][0] == f"FROM {base}"
    finally:
        subprocess.run(["podman", "rmi", "-f", base], capture_output=True)


def test_push_to_an_oci_layout_directory(engine, tmp_path):
    out = tmp_path / "layouts" / "hello"
    rec = build(engine, EXAMPLES / "hello", profile="host-ro", push=f"oci:{out}:v1")
    assert rec.done.status == "succeeded", rec.of(Failed)
    index = json.loads((out / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert "v1" in tags
    assert rec.of(Pushed)[0].digest == index["manifests"][tags.index("v1")]["digest"]
