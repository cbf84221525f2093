"""Orphans against real podman: a `buildcage build` killed with SIGKILL leaves its builder running
(its pins, its fresh store); `buildcage gc` or the next build removes them all. On SIGHUP the CLI
cleans up itself. Nothing a live process owns is touched, whoever runs gc; doctor reports
orphans. Orphans here are made by this test's own processes, or labelled with an owner that is
provably dead (a child process this test started and reaped): never anyone else's."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from podman_helpers import ROOT, Background

from tui.engine.orphans import (
    OWNER_LABEL,
    Machine,
    collect,
    collect_on_start,
    current_owner,
    find_orphans,
)
from tui.engine.paths import store_lock_path
from tui.engine.stores import PIN_LABEL

SLOW = ROOT / "tests" / "data" / "contexts" / "slow"
HELLO = ROOT / "examples" / "hello"
BUILDCAGE = str(ROOT / ".venv" / "bin" / "buildcage")
BUILDER_IMAGE = "localhost/buildcage/builder:latest"
BUSYBOX = "localhost/buildcage/busybox:latest"


@pytest.fixture(scope="session")
def provisioned() -> None:
    """This machine is provisioned by another run (shared podman): wait for it, never do it."""
    deadline = time.time() + 600
    while subprocess.run(["podman", "image", "exists", BUILDER_IMAGE]).returncode != 0:
        assert time.time() < deadline, f"{BUILDER_IMAGE} never appeared"
        time.sleep(5)


@pytest.fixture(autouse=True)
def _real_host(provisioned, data_home):
    """Stores and history in this session's data directory (the CLI gets it through XDG)."""


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True).stdout.strip()


def left_of(build_id: str) -> list[str]:
    """Everything podman still has of one build: containers, pods and volumes."""
    label = f"label=buildcage.build={build_id}"
    names = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").split()
    names += podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").split()
    names += podman("pod", "ps", "--filter", label, "--format", "{{.Name}}").split()
    return names


def state(name: str) -> str:
    return podman("inspect", name, "--format", "{{.State.Status}}")


def removed_between(since: float, until: float) -> set[str]:
    """Names of containers, pods and volumes podman removed in [since, until), by anyone."""
    out = subprocess.run(["podman", "events", "--since", str(int(since)), "--until",
                          str(int(until) + 1), "--filter", "event=remove", "--format",
                          "{{json .}}"], capture_output=True, text=True, timeout=60).stdout
    names = set()
    for line in out.splitlines():
        event = json.loads(line)
        stamp = event["Time"].rstrip("Z")
        head, _, fraction = stamp.partition(".")
        when = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
        when += float(f"0.{fraction or 0}")
        if since <= when < until:
            names.add(event["Name"])
    return names


def gc_removed(things: list[str], since: float) -> subprocess.CompletedProcess[str]:
    """Runs `buildcage gc` until it leaves nothing for later; each of ``things`` ("container
    NAME", "pod NAME", ...) must be named as removed by it, or have been removed by another
    buildcage process (since ``since``): this podman is shared, every build collects orphans
    when it starts, and such a collector may be first, or hold the orphan's store lock while
    it works (gc then leaves the orphan "for later": it tries again)."""
    said = ""
    deadline = time.time() + 120
    while True:
        out = cli("gc")
        said += out.stdout
        problems = out.stderr.splitlines()
        if out.returncode == 0 or not all("in use by a build; left for later" in line
                                          for line in problems):
            break
        assert time.time() < deadline, out.stderr
        time.sleep(1)
    assert out.returncode == 0, out.stderr
    elsewhere = removed_between(since, time.time())
    for thing in things:
        assert f"removed {thing} " in said or thing.split()[1] in elsewhere, said
    return subprocess.CompletedProcess(out.args, out.returncode, said, out.stderr)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BUILDCAGE, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


class CliBuild:
    """`buildcage build --json` in its own process, read until its RUN step has started."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([BUILDCAGE, "build", *args, "--json", "--no-cache"],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.events: list[dict] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))
            if self.events[-1].get("line") == "started":
                break
        else:
            raise AssertionError(f"the build never started: {self.events[-5:]}")
        self.build_id = next(e["build_id"] for e in self.events if e["event"] == "build_started")

    def finish(self, timeout: float = 120) -> int:
        rest, _ = self.proc.communicate(timeout=timeout)
        self.events += [json.loads(line) for line in rest.splitlines()]
        return self.proc.returncode


# host-ro's killed build is the next test's: the next build of its project collects it.
# project is collected as host-rw is (no volume); its store lock: the host-ro tests below.
@pytest.mark.parametrize("profile", ["isolated", "host-rw"])
def test_a_killed_build_keeps_running_until_gc_removes_builder_and_volume(profile):
    build = CliBuild(str(SLOW), "--profile", profile, "--allow-host-rw",
                     "--build-arg", "UNUSED=1")
    build.proc.kill()  # SIGKILL: no handler runs
    build.proc.wait(10)
    killed = time.time()
    name, volume = f"buildcage-{build.build_id}-build", f"buildcage-store-{build.build_id}"
    assert state(name) == "running"  # the orphan: its process is gone, its builder is not
    fresh = profile == "isolated"
    assert (volume in left_of(build.build_id)) == fresh
    owner = podman("inspect", name, "--format", f'{{{{index .Config.Labels "{OWNER_LABEL}"}}}}')
    assert owner.split(":")[1] == str(build.proc.pid)

    dry = cli("gc", "--dry-run")
    assert dry.returncode == 0
    if name not in removed_between(killed, time.time()):
        assert f"would remove container {name}" in dry.stdout

    things = [f"container {name}"] + ([f"volume {volume}"] if fresh else [])
    out = gc_removed(things, killed)
    assert fresh or f"removed volume {volume}" not in out.stdout
    if f"removed container {name}" in out.stdout:  # (else another build's start collected it)
        assert f"process {build.proc.pid} on" in out.stdout
    assert left_of(build.build_id) == []
    # The build arguments' podman secret goes with them (whichever collector took it).
    assert build.build_id not in podman("secret", "ls", "--format", "{{.Name}}")


def test_a_killed_host_ro_build_is_collected_by_the_next_build_of_its_project(run_id):
    """The killed build no longer holds its project store's lock, but its builder still writes
    that store: the next build must not share the store with it (nor sweep its working
    container); it removes the orphan first, the careful way, then builds."""
    project = f"orphan-{run_id}"
    build = CliBuild(str(SLOW), "--profile", "host-ro", "--project", project)
    build.proc.kill()
    build.proc.wait(10)
    killed = time.time()
    builder = f"buildcage-{build.build_id}-build"
    pins = podman("ps", "-a", "--filter", f"label={PIN_LABEL}={build.build_id}",
                  "--format", "{{.Names}}").split()
    assert pins and state(builder) == "running"

    started = time.time()
    out = cli("build", str(HELLO), "--profile", "host-ro", "--project", project, "--json")
    assert out.returncode == 0, out.stdout[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    warnings = [r["message"] for r in rows if r["event"] == "warning"]
    if builder not in removed_between(killed, started):  # (another build may have been first)
        assert any(f"container {builder}" in w and "which is gone" in w
                   for w in warnings), warnings
    assert rows[-1]["status"] == "succeeded"
    assert left_of(build.build_id) == []
    store = Path(os.environ["XDG_DATA_HOME"]) / "buildcage" / "stores" / "host-ro" / project
    records = json.loads((store / "storage" / "overlay-containers" / "containers.json")
                        .read_text())
    assert [r["names"] for r in records if "-working-container" in str(r["names"])] == []


def test_a_host_ro_builder_killed_outright_has_its_working_container_swept(engine, run_id):
    """SIGKILL to the CLI and to its builder: Buildah cannot remove its working container from
    the project store. Collecting the orphan sweeps it with a short-lived container on the same
    overlays of the host store, which takes its own lock files first. (The sweeper used to get
    the builder's mounts as inspect shows them once started: each overlay a bind of a directory
    of the builder's own, which podman removes when the builder stops: the sweep failed.)"""
    project = f"outright-{run_id}"
    build = CliBuild(str(SLOW), "--profile", "host-ro", "--project", project)
    build.proc.kill()
    build.proc.wait(10)
    builder = f"buildcage-{build.build_id}-build"
    podman("kill", builder)
    records = (Path(os.environ["XDG_DATA_HOME"]) / "buildcage" / "stores" / "host-ro" / project
               / "storage" / "overlay-containers" / "containers.json")

    def working() -> list[str]:
        return [r["id"] for r in json.loads(records.read_text())
                if any(n.endswith("-working-container") for n in r.get("names") or [])]

    assert working(), "Buildah left no working container to sweep"
    client = engine.client()
    orphans = [o for o in find_orphans(client) if o.build_id == build.build_id]
    report = collect(client, orphans)  # (a build starting meanwhile may be first: same code)
    assert working() == [], report.left
    assert left_of(build.build_id) == []
    assert not [r for r in report.left if build.build_id in r or project in r], report.left


# SIGHUP is turned into the cancel by the CLI, whatever the profile; each profile's cancel and
# clean-up is test_reliability_real's (random moments, every profile). isolated has the most to
# clean up: three phase containers, a volume, the secrets.
@pytest.mark.parametrize("profile", ["isolated"])
def test_sighup_cancels_and_cleans_up_without_gc(profile):
    build = CliBuild(str(SLOW), "--profile", profile, "--allow-host-rw")
    build.proc.send_signal(signal.SIGHUP)
    assert build.finish() == 130
    assert build.events[-1]["event"] == "done" and build.events[-1]["status"] == "canceled"
    assert left_of(build.build_id) == []


def test_gc_from_another_process_leaves_a_live_build_alone(engine):
    running = Background(engine, engine.plan(SLOW, profile="host-ro", no_cache=True))
    try:
        running.wait_for_line("started")
        build_id = running.plan.build_id
        before = sorted(left_of(build_id))
        assert f"buildcage-{build_id}-build" in before and any("-pin-" in n for n in before)
        out = cli("gc")
        assert out.returncode == 0
        assert build_id not in out.stdout
        assert sorted(left_of(build_id)) == before
        assert state(f"buildcage-{build_id}-build") == "running"
    finally:
        running.runner.cancel()
    assert running.join().status == "canceled"
    assert left_of(running.plan.build_id) == []


@pytest.fixture
def dead_owner() -> str:
    """The owner value of a process that existed and is provably gone (reaped by us)."""
    child = subprocess.Popen(["sleep", "60"])
    owner = Machine.here().owner(child.pid)
    child.kill()
    child.wait()
    return str(owner)


@pytest.fixture
def fake_orphan(run_id: str, dead_owner: str, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """A container and a volume of build it-RUN_ID whose owner is gone; removed afterwards
    if the test did not. The container mounts a store of its own whose lock the test holds
    (yielded), so that no other buildcage process collects it before the test lets go."""
    build = f"it-{run_id}"
    store = tmp_path / "store"
    store.mkdir()
    lock = open(store_lock_path(store), "w")  # noqa: SIM115 - closed below
    fcntl.flock(lock, fcntl.LOCK_EX)
    label = [f"--label=buildcage.build={build}", f"--label={OWNER_LABEL}={dead_owner}"]
    subprocess.run(["podman", "create", "--name", f"buildcage-{build}", *label,
                    f"--volume={store}:/var/lib/containers", "--network=none", BUSYBOX,
                    "true"], check=True, capture_output=True)
    subprocess.run(["podman", "volume", "create", *label, f"buildcage-store-{build}"],
                   check=True, capture_output=True)
    yield build, lock
    lock.close()
    subprocess.run(["podman", "rm", "-f", f"buildcage-{build}"], capture_output=True)
    subprocess.run(["podman", "volume", "rm", "-f", f"buildcage-store-{build}"],
                   capture_output=True)


@pytest.fixture
def live_thing(run_id: str) -> Iterator[str]:
    """A container owned by this (living) test process."""
    build = f"it-live-{run_id}"
    subprocess.run(["podman", "create", "--name", f"buildcage-{build}",
                    f"--label=buildcage.build={build}",
                    f"--label={OWNER_LABEL}={current_owner()}", "--network=none", BUSYBOX,
                    "true"], check=True, capture_output=True)
    yield build
    subprocess.run(["podman", "rm", "-f", f"buildcage-{build}"], capture_output=True)


def test_doctor_reports_an_orphan_and_gc_removes_only_it(fake_orphan, live_thing):
    build, lock = fake_orphan
    out = cli("doctor")
    line = next(row for row in out.stdout.splitlines() if " orphans " in f" {row} ")
    assert line.startswith("FAIL"), out.stdout
    assert f"buildcage-{build}" in out.stdout and live_thing not in line
    assert "fix: buildcage gc" in out.stdout
    assert out.returncode == 1

    # While its store is locked (a build is using it), gc leaves the orphan for later.
    held = cli("gc")
    assert f"buildcage-{build}" in held.stderr and "in use by a build" in held.stderr
    assert f"buildcage-{build}" in left_of(build)

    lock.close()
    gc_removed([f"container buildcage-{build}", f"volume buildcage-store-{build}"],
               time.time())
    assert left_of(build) == []
    assert left_of(live_thing) == [f"buildcage-{live_thing}"]  # its owner (this test) lives
    after = cli("doctor")
    line = next(row for row in after.stdout.splitlines() if " orphans " in f" {row} ")
    assert build not in line


def test_a_build_waits_for_a_builder_still_running_on_its_store(engine, run_id):
    """A builder whose owner cannot be checked (another host's) and that writes this project's
    store holds the store as surely as the flock: the build waits for it."""
    project = f"claim-{run_id}"
    plan = engine.plan(HELLO, profile="project", project=project)
    assert plan.store_dir is not None
    plan.store_dir.mkdir(parents=True, exist_ok=True)
    foreign = f"buildcage-foreign-{run_id}"
    subprocess.run(["podman", "run", "-d", "--name", foreign, "--network=none",
                    f"--label=buildcage.build=foreign-{run_id}",
                    f"--label={OWNER_LABEL}=some-other-host:4242:1:feed",
                    f"--volume={plan.store_dir}:/var/lib/containers", BUSYBOX, "sleep", "300"],
                   check=True, capture_output=True)
    try:
        running = Background(engine, plan)
        deadline = time.time() + 60
        while not any("waiting for builder" in getattr(e, "message", "")
                      for e in list(running.rec.events)):
            assert time.time() < deadline, running.rec.events
            time.sleep(0.2)
        assert foreign in next(e.message for e in running.rec.events
                               if "waiting for builder" in getattr(e, "message", ""))
        assert not any(type(e).__name__ == "BuildStarted" for e in running.rec.events)
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", foreign], capture_output=True)
    assert running.join(180).status == "succeeded"


def test_closing_the_tuis_terminal_cancels_its_build_and_cleans_up(run_id):
    """The TUI in tmux builds the slow context; the tmux session is killed (the terminal hangs
    up: SIGHUP). The app cancels the build, removes builder and pins, and exits."""
    session = f"buildcage-it-{run_id}"
    # pytest sets COLUMNS and LINES, which Textual would take for the terminal's size.
    command = (f"cd {ROOT} && exec env -u COLUMNS -u LINES "
               f"XDG_DATA_HOME={os.environ['XDG_DATA_HOME']} {BUILDCAGE} {SLOW}")
    pid = int(subprocess.run(["tmux", "new", "-d", "-s", session, "-x", "120", "-y", "36",
                              "-P", "-F", "#{pane_pid}", command], capture_output=True,
                             text=True, check=True).stdout)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              capture_output=True, text=True).stdout

    def owned_by_the_tui() -> list[tuple[str, str]]:
        rows = podman("ps", "-a", "--filter", f"label={OWNER_LABEL}", "--format",
                      f'{{{{.Names}}}} {{{{index .Labels "{OWNER_LABEL}"}}}} '
                      '{{index .Labels "buildcage.build"}}').splitlines()
        return [(row.split()[0], row.split()[2]) for row in rows
                if row.split()[1].split(":")[1] == str(pid)]

    try:
        deadline = time.time() + 60
        while "Build ▶ F5" not in screen():
            assert time.time() < deadline, screen()
            time.sleep(0.2)
        subprocess.run(["tmux", "send-keys", "-t", session, "F5"], check=True)
        while not any(line.strip() == "started" for line in screen().splitlines()):
            assert time.time() < deadline + 60, screen()
            time.sleep(0.2)
        mine = owned_by_the_tui()
        build_id = mine[0][1]
        assert f"buildcage-{build_id}-build" in [name for name, _ in mine]
        assert state(f"buildcage-{build_id}-build") == "running"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    deadline = time.time() + 60
    while Path(f"/proc/{pid}").exists():
        assert time.time() < deadline, "the TUI did not exit after its terminal closed"
        time.sleep(0.2)
    assert left_of(build_id) == []


def test_a_killed_kube_build_leaves_pods_that_gc_removes(run_id):
    """As Kubernetes Pods (one per phase), the orphan is the build phase's running Pod and the
    fetch phase's exited one."""
    build = CliBuild(str(SLOW), "--profile", "project", "--project", f"kube-orphan-{run_id}",
                     "--on", "kube")
    build.proc.kill()
    build.proc.wait(10)
    killed = time.time()
    pods = podman("pod", "ps", "--filter", f"name=buildcage-{build.build_id}", "--format",
                  "{{.Name}}").split()
    assert f"buildcage-{build.build_id}-build" in pods
    assert state(f"buildcage-{build.build_id}-build-builder") == "running"
    # podman kube play copied the fetch phase's Secret (the registry credentials) into a volume
    # of the Secret's name, unlabelled: it is part of what the dead build left.
    copy = f"buildcage-{build.build_id}-fetch"
    assert copy in podman("volume", "ls", "--format", "{{.Name}}").split()
    gc_removed([f"container buildcage-{build.build_id}-build-builder",
                *(f"pod {pod}" for pod in pods), f"volume {copy}"], killed)
    assert left_of(build.build_id) == []
    assert podman("pod", "ps", "--filter", f"name=buildcage-{build.build_id}", "-q") == ""
    assert [v for v in podman("volume", "ls", "--format", "{{.Name}}").split()
            if build.build_id in v] == []


def test_a_secret_copy_whose_build_is_gone_is_collected(run_id, data_home):
    """A copy whose build's record names a process that is gone is collected; one a container
    still uses is left alone; a young one no record here explains (another data directory's
    build, its Pod being played) is not taken."""
    build_id = run_id[:8].ljust(12, "0")
    unused, used = f"buildcage-{build_id}-fetch", f"buildcage-{build_id}-build"
    stranger = f"buildcage-{run_id[:8].ljust(12, 'f')}-publish"
    user = f"it-copy-user-{run_id}"
    child = subprocess.Popen(["sleep", "60"])
    owner = Machine.here().owner(child.pid)
    child.kill()
    child.wait()
    records = data_home / "buildcage" / "secret-owners"
    records.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = records / f"{build_id}.json"
    record.write_text(json.dumps({"build": build_id, "owner": str(owner), "service": "local",
                                  "secrets": [unused, used]}))
    for name in (unused, used, stranger):
        podman("volume", "create", name)
    podman("create", "--name", user, "-v", f"{used}:/x", BUSYBOX, "true")
    try:
        out = gc_removed([f"volume {unused}"], time.time())
        assert used not in out.stdout and stranger not in out.stdout
        left = podman("volume", "ls", "--format", "{{.Name}}").split()
        assert used in left and stranger in left and unused not in left
    finally:
        subprocess.run(["podman", "rm", "-f", user], capture_output=True)
        subprocess.run(["podman", "volume", "rm", "-f", unused, used, stranger],
                       capture_output=True)
        record.unlink(missing_ok=True)


# A process that makes a build's podman secrets exactly as the runner does (prepare, with the
# runner's own secret maker), then either dies by SIGKILL right after the last secret exists
# (before any container, pod or volume of the build) or stays alive until told to release.
SECRET_MAKER = """
import os, signal, sys
from tui.engine.config import load_config
from tui.engine.orphans import owned
from tui.engine.planner import make_plan
from tui.engine.podman_api import connect
from tui.engine.runner import BuildRunner
from tui.engine.stores import prepare, release

context, project, secret_file, how = sys.argv[1:5]
config = load_config()
plan = owned(make_plan(context, config=config, profile="project", project=project,
                       build_args=(("UNUSED", "1"),), secrets=(("token", secret_file),)))
assert plan.authfile is not None, "the registry auth file is one of the secrets"
print(plan.build_id, flush=True)
client = connect(config.podman_url)

def make(client, plan):
    names = BuildRunner._make_secrets(client, plan)
    if how == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return names

state = prepare(client, plan, make_secrets=make)
print("ready", flush=True)
sys.stdin.readline()
print("left: " + repr(release(client, state)), flush=True)
"""


class SecretMaker:
    def __init__(self, project: str, secret_file: Path, how: str) -> None:
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", SECRET_MAKER, str(HELLO), project,
             str(secret_file), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=ROOT)
        assert self.proc.stdout is not None
        self.build_id = self.proc.stdout.readline().strip()
        assert self.build_id, "the secret maker never planned"
        if how == "die":
            assert self.proc.wait(60) == -signal.SIGKILL
        else:
            assert self.proc.stdout.readline().strip() == "ready"

    def secrets(self) -> list[str]:
        return sorted(n for n in podman("secret", "ls", "--format", "{{.Name}}").split()
                      if n.startswith(f"buildcage-{self.build_id}-"))


def test_secrets_of_a_build_killed_before_its_first_container_are_collected(engine, run_id,
                                                                            tmp_path):
    """No labelled container, pod or volume tells of these secrets: podman 4.3 keeps no
    labels on secrets. gc, doctor and the start of every build still find them once their
    process is gone, and never touch a live process's secrets."""
    value = f"do-not-print-{run_id}"
    secret_file = tmp_path / "token"
    secret_file.write_text(value)
    makers: list[SecretMaker] = []
    try:
        live = SecretMaker(f"sec-live-{run_id}", secret_file, "wait")
        makers.append(live)
        dead = SecretMaker(f"sec-dead-{run_id}", secret_file, "die")
        makers.append(dead)
        mine = [f"buildcage-{dead.build_id}-{what}" for what in ("args", "auth", "s-token")]
        assert dead.secrets() == mine and len(live.secrets()) == 3
        assert left_of(dead.build_id) == []  # nothing labelled: only the secrets tell
        data = Path(os.environ["XDG_DATA_HOME"]) / "buildcage"
        assert (data / "builds" / dead.build_id / "owner").is_file()  # its owner, written first

        doctor = cli("doctor")
        line = next(row for row in doctor.stdout.splitlines() if " orphans " in f" {row} ")
        assert line.startswith("FAIL") and f"secret buildcage-{dead.build_id}-" in line, line
        assert live.build_id not in doctor.stdout
        dry = cli("gc", "--dry-run")
        for name in mine:
            assert f"would remove secret {name} (build {dead.build_id} of" in dry.stdout
        assert dead.secrets() == mine

        out = cli("gc")
        assert out.returncode == 0, out.stderr
        for name in mine:
            assert f"removed secret {name} (build {dead.build_id} of buildcage process " \
                   f"{dead.proc.pid} on" in out.stdout
        assert dead.secrets() == [] and len(live.secrets()) == 3
        assert live.build_id not in out.stdout
        assert f"removed directory {data / 'builds' / dead.build_id} (build" in out.stdout
        assert not (data / "builds" / dead.build_id).exists()
        assert (data / "builds" / live.build_id).is_dir()

        # The start of every build collects them too (the runner's first step).
        again = SecretMaker(f"sec-dead2-{run_id}", secret_file, "die")
        makers.append(again)
        assert len(again.secrets()) == 3
        warnings: list[str] = []
        collect_on_start(engine.client(), warnings.append)
        assert again.secrets() == [] and len(live.secrets()) == 3
        assert any(f"secret buildcage-{again.build_id}-args" in w for w in warnings), warnings

        assert live.proc.stdin is not None and live.proc.stdout is not None
        live.proc.stdin.write("\n")
        live.proc.stdin.flush()
        assert live.proc.stdout.readline().strip() == "left: []"
        assert live.proc.wait(60) == 0
        assert live.secrets() == []
        assert not (data / "builds" / live.build_id).exists()
        # The values were never written down: neither in buildcage's data directory nor in
        # what gc and doctor print.
        for path in data.rglob("*"):
            if "stores" not in path.parts and path.is_file() and not path.is_symlink():
                assert value.encode() not in path.read_bytes(), path
        assert value not in doctor.stdout + dry.stdout + out.stdout + out.stderr
    finally:
        for maker in makers:
            if maker.proc.poll() is None:
                maker.proc.kill()
                maker.proc.wait()
            for name in maker.secrets():
                podman("secret", "rm", name)
