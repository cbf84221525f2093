"""Reliability: cancels at random moments (while stores are prepared, the container created,
Buildah pulling or running) leave no container, volume, pin or per-build file behind."""

from __future__ import annotations

import random
import subprocess
import time

from podman_helpers import ROOT, Background, build

from tui.engine.stores import PIN_LABEL, leftovers

SLOW = ROOT / "tests" / "data" / "contexts" / "slow"


def store_containers(plan) -> set[str]:
    """Buildah working containers in the store the plan's builder writes to."""
    if plan.profile.store == "host":
        argv = ["buildah", "containers", "-q"]
    else:
        argv = ["podman", "run", "--rm", "--device=/dev/fuse",
                f"--volume={plan.store_dir}:/var/lib/containers",
                f"--volume={plan.storage_conf_path}:/etc/containers/storage.conf:ro",
                plan.builder_image, "buildah", "containers", "-q"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_random_cancels_in_every_profile_leave_nothing_behind(engine, data_home):
    rng = random.Random(20261129)
    client = engine.client()
    statuses = []
    persistent = {}
    # The host's store is everyone's: a person's own `buildah from` there is not this test's.
    before = {"host-rw": set(subprocess.run(["buildah", "containers", "-q"], capture_output=True,
                                            text=True, check=True).stdout.split())}
    for i in range(12):  # three per profile, at random moments of the build
        profile = ("isolated", "host-ro", "project", "host-rw")[i % 4]
        plan = engine.plan(SLOW, profile=profile, no_cache=True, confirmed=True)
        running = Background(engine, plan)
        rec = running.rec
        time.sleep(rng.uniform(0.0, 2.5))
        running.runner.cancel()
        running.join()
        statuses.append(rec.done.status)
        assert rec.done.status == "canceled", (i, profile, rec.events[-3:])
        assert leftovers(client, plan.build_id) == [], (i, profile)
        assert client.containers.list(
            all=True, filters={"label": f"{PIN_LABEL}={plan.build_id}"}) == []
        assert not client.volumes.exists(plan.store_volume)
        assert not plan.mount_record_path.exists()
        if plan.profile.store != "fresh":
            persistent[profile] = plan
    assert statuses == ["canceled"] * 12
    for plan in persistent.values():
        assert store_containers(plan) - before.get(plan.profile.name, set()) == set(), \
            plan.profile.name


def test_canceling_host_rw_leaves_no_buildah_container_in_the_host_store(engine):
    def working_containers() -> set[str]:
        out = subprocess.run(["buildah", "containers", "-q"], capture_output=True, text=True)
        return set(out.stdout.split())

    before = working_containers()
    running = Background(engine, engine.plan(SLOW, profile="host-rw", no_cache=True,
                                           confirmed=True))
    running.wait_for_line("started")
    assert len(working_containers() - before) == 1  # Buildah's, while the RUN runs
    running.runner.cancel()
    assert running.join().status == "canceled"
    assert working_containers() == before


def test_two_builds_of_one_project_take_turns(engine, run_id):
    """The second build waits for the first (and says so) instead of sharing the store."""
    from tui.engine.events import BuildStarted, BuildWarning

    project = f"turns-{run_id}"
    first = Background(engine, engine.plan(SLOW, profile="project", no_cache=True,
                                           project=project))
    first.wait_for_line("started")
    second = Background(engine, engine.plan(ROOT / "examples" / "hello", profile="project",
                                            project=project))
    deadline = time.time() + 60

    def waiting() -> list[BuildWarning]:
        return [w for w in second.rec.of(BuildWarning) if "waiting for another build" in w.message]

    while not waiting():
        assert time.time() < deadline, second.rec.events
        time.sleep(0.1)
    assert not second.rec.of(BuildStarted)  # it waits before its builder exists
    first.runner.cancel()
    assert first.join().status == "canceled"
    assert second.join(120).status == "succeeded"


def test_registry_dying_mid_build_loses_nothing(provisioned, data_home, tmp_path, run_id):
    """The push fails with a clear message; the built layers stay in the project's store, so
    the same build after the registry is back is all cache hits and pushes."""
    import socket

    from tui.engine.config import Config, RegistryConfig
    from tui.engine.events import Failed, ImageBuilt
    from tui.engine.history import History
    from tui.engine.session import Engine

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"127.0.0.1:{port}"
    config_file = tmp_path / "registry.yml"
    config_file.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                           f"    rootdirectory: {tmp_path / 'data'}\nhttp:\n  addr: {host}\n")

    def start_registry() -> subprocess.Popen:
        proc = subprocess.Popen(["docker-registry", "serve", str(config_file)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return proc
            time.sleep(0.1)
        proc.kill()
        raise AssertionError("test registry did not start")

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(
        "FROM 127.0.0.1:5000/buildcage/busybox:latest\n"
        "RUN echo started && sleep 3 && echo built > /built\n")
    config = Config()
    config.registries[host] = RegistryConfig(host, tls_verify=False)
    engine = Engine(config, History(data_home / "history-registry.sqlite3"))
    options = dict(profile="project", project=f"reg-{run_id}", push=f"{host}/it/app:1")

    registry = start_registry()
    try:
        interrupted = Background(engine, engine.plan(context, **options))
        interrupted.wait_for_line("started")
        registry.kill()
        registry.wait()
        assert interrupted.join(120).status == "failed"
        first = interrupted.rec
        assert first.of(ImageBuilt), "the image was built before the push failed"
        failed = first.of(Failed)
        assert len(failed) == 1 and host in failed[0].message, failed
        registry = start_registry()
        second = build(engine, context, **options)
        assert second.done.status == "succeeded"
        assert second.done.cache_hits == 1  # the RUN layer survived the failed push
        assert second.done.pushed.startswith(f"{host}/it/app:1@sha256:")
    finally:
        registry.kill()


def test_podman_service_going_away_mid_build_loses_nothing(engine, tmp_path):
    """The builder runs on without the API service; the runner keeps reading its output, waits
    for the service, and finishes the build when it is back (here after a few seconds)."""
    from tui.engine.events import BuildWarning

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(
        "FROM 127.0.0.1:5000/buildcage/busybox:latest\n"
        "RUN echo started && sleep 6 && echo finished\n")
    plan = engine.plan(context, profile="project", no_cache=True)
    running = Background(engine, plan)
    rec = running.rec
    try:
        running.wait_for_line("started")
        subprocess.run(["pkill", "-f", "podman system service"], check=True)
        time.sleep(3)
    finally:
        subprocess.run(["bash", str(ROOT / "provision" / "provision.sh")], check=True,
                       stdout=subprocess.DEVNULL)
    running.join(120)
    assert rec.done.status == "succeeded", rec.events[-4:]
    lines = [e.line for e in rec.events if hasattr(e, "line")]
    assert "finished" in lines  # output written while the service was away
    warnings = [w.message for w in rec.of(BuildWarning)]
    assert any("lost the podman service" in w for w in warnings)
    assert any("answers again" in w for w in warnings)
    assert leftovers(engine.client(), plan.build_id) == []
