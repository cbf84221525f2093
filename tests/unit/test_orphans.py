"""Owners and orphans without podman: owner labels, the liveness check (fake /proc), finding and
collecting orphans on a fake podman that records what was done, in which order."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from podman.errors import NotFound

from tui.engine.config import Config
from tui.engine.hostview import LOCKS
from tui.engine.orphans import (
    OWNER_LABEL,
    Machine,
    Owner,
    claim_store,
    collect,
    current_owner,
    find_orphans,
    owned,
    process_start,
    store_use,
    sweeper_kwargs,
)
from tui.engine.paths import store_lock_path
from tui.engine.planner import make_plan
from tui.engine.renderings import create_kwargs, kube_pod, podman_run
from tui.engine.stores import prepare

ROOT = Path(__file__).resolve().parents[2]
INSPECT = ROOT / "tests" / "data" / "inspect"
HOST = "testhost"
BOOT = "b00t"


# -- a fake /proc ----------------------------------------------------------------------------------
def stat_line(pid: int, start: int, comm: str = "python3", state: str = "S") -> str:
    # Fields 3..52 after "(comm)"; field 22 (index 19 of those) is the start time.
    rest = [state] + ["0"] * 49
    rest[19] = str(start)
    return f"{pid} ({comm}) {' '.join(rest)}\n"


def fake_proc(tmp_path: Path, processes: dict[int, int], boot: str = BOOT) -> Path:
    proc = tmp_path / "proc"
    for pid, start in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(stat_line(pid, start))
    (proc / "sys" / "kernel" / "random").mkdir(parents=True)
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text(boot + "\n")
    return proc


def test_process_start_is_field_22_even_after_a_command_with_spaces_and_parens(tmp_path):
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "stat").write_text(stat_line(42, 987654, comm="a b) c (d"))
    assert process_start(42, proc) == 987654
    assert process_start(43, proc) is None


def test_a_zombie_is_gone(tmp_path):
    """Killed, not reaped yet by its parent: it runs nothing any more."""
    proc = fake_proc(tmp_path, {})
    (proc / "7").mkdir()
    (proc / "7" / "stat").write_text(stat_line(7, 5000, state="Z"))
    assert process_start(7, proc) is None
    assert Machine(HOST, BOOT, proc).gone(Owner(HOST, 7, 5000, BOOT))


def test_a_real_zombie_and_a_reaped_child_are_gone():
    import signal
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "60"])
    machine = Machine.here()
    owner = machine.owner(child.pid)
    assert not machine.gone(owner)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.time() < deadline
        time.sleep(0.01)
    assert machine.gone(owner)  # killed, its parent (this test) has not reaped it yet
    child.wait()
    assert machine.gone(owner)


def test_this_process_as_owner_matches_proc():
    me = current_owner()
    assert me.pid == os.getpid()
    fields = Path(f"/proc/{os.getpid()}/stat").read_text().rpartition(")")[2].split()
    assert me.start == int(fields[19])
    assert Owner.parse(str(me)) == me
    assert not Machine.here().gone(me)


def test_owner_parse_rejects_junk():
    assert Owner.parse("h:12:34") == Owner("h", 12, 34)
    assert Owner.parse("h:12:34:b") == Owner("h", 12, 34, "b")
    for junk in ("", "h", "h:12", "h:x:34", ":12:34", "h:0:34", "h:1:2:3:4"):
        assert Owner.parse(junk) is None, junk


def test_gone_means_provably_gone(tmp_path):
    machine = Machine(HOST, BOOT, fake_proc(tmp_path, {100: 5000}))
    assert not machine.gone(Owner(HOST, 100, 5000, BOOT))  # alive
    assert machine.gone(Owner(HOST, 100, 5001, BOOT))  # the pid was reused by another process
    assert machine.gone(Owner(HOST, 101, 5000, BOOT))  # no such process
    assert machine.gone(Owner(HOST, 100, 5000, "earlier"))  # an earlier boot
    assert not machine.gone(Owner("otherhost", 101, 1, BOOT))  # cannot be checked from here


def test_without_a_working_proc_nobody_is_gone(tmp_path):
    empty = tmp_path / "no-proc"
    empty.mkdir()
    machine = Machine.here(empty)
    assert not machine.usable
    assert not machine.gone(Owner(machine.host, 12345, 1))


# -- labels ----------------------------------------------------------------------------------------
def plan_for(tmp_path: Path, profile: str = "host-ro", project: str = "p"):
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text("FROM 127.0.0.1:5000/buildcage/busybox:latest\nRUN true\n")
    os.environ["XDG_DATA_HOME"] = str(tmp_path / "data")
    try:
        return make_plan(ctx, config=Config(), profile=profile, project=project, confirmed=True)
    finally:
        del os.environ["XDG_DATA_HOME"]


def test_a_plan_that_runs_labels_everything_with_its_owner(tmp_path):
    plan = plan_for(tmp_path, "isolated")
    assert OWNER_LABEL not in plan.labels()  # shown plans (a pasted podman run) have no owner
    assert "owner" not in podman_run(plan)
    assert kube_pod(plan)["metadata"]["labels"] == {"app": "buildcage",
                                                    "buildcage-phase": "build"}
    mine = owned(plan)
    me = str(current_owner())
    assert mine.labels()[OWNER_LABEL] == me
    assert create_kwargs(mine)["labels"][OWNER_LABEL] == me
    assert f"--label={OWNER_LABEL}={me}" in podman_run(mine)
    # podman kube play gives the Pod's labels to the Pod and to its containers.
    assert kube_pod(mine)["metadata"]["labels"] == {
        "app": "buildcage", "buildcage-phase": "build", "buildcage.build": plan.build_id,
        OWNER_LABEL: me}
    assert owned(mine) is mine


def test_the_fresh_store_volume_and_the_pins_carry_the_owner(tmp_path):
    made: dict[str, dict[str, str]] = {}

    class Volumes:
        def create(self, name: str, labels: dict[str, str]) -> None:
            made[name] = labels

    class Image:
        id = "f" * 64
        attrs = {"Id": "f" * 64, "Digest": "sha256:" + "d" * 64}

    class Images:
        def get(self, ref: str) -> Image:
            return Image()

    class Containers:
        def create(self, **kwargs: Any) -> Any:
            made[kwargs["name"]] = kwargs["labels"]
            return type("C", (), {"id": kwargs["name"], "attrs": {"Image": "f" * 64}})()

    client = type("Client", (), {"volumes": Volumes(), "images": Images(),
                                 "containers": Containers()})()
    me = str(current_owner())
    fresh = owned(plan_for(tmp_path, "isolated"))
    prepare(client, fresh)
    assert made[fresh.store_volume][OWNER_LABEL] == me
    pinned = owned(plan_for(tmp_path, "host-ro"))
    prepare(client, pinned)
    assert made[f"buildcage-pin-{pinned.build_id}-0"][OWNER_LABEL] == me


# -- a fake podman ---------------------------------------------------------------------------------
class World:
    """The fake service's state and the log of what was done to it."""

    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.pods: dict[str, FakeThing] = {}
        self.volumes: dict[str, FakeThing] = {}
        self.secrets: dict[str, FakeThing] = {}
        self.log: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []


class FakeContainer:
    def __init__(self, world: World, name: str, labels: dict[str, str], state: str = "exited",
                 mounts: list[dict[str, Any]] | None = None, started: bool = True,
                 created: str = "2026-11-29T09:00:00.123456789Z", command: list[str] | None = None,
                 pod: str = "") -> None:
        self.world, self.name, self.id = world, name, f"id-{name}"
        self.labels, self.state, self.command = labels, state, command or []
        self.inspect = {
            "Id": self.id, "Name": name, "Created": created, "Image": "builder-id", "Pod": pod,
            "Config": {"Labels": labels}, "Mounts": mounts or [],
            "State": {"Status": state,
                      "StartedAt": "2026-11-29T09:00:01Z" if started else "0001-01-01T00:00:00Z"},
            "HostConfig": {"NetworkMode": "host", "Devices": [], "Ulimits": []},
        }
        self.attrs: dict[str, Any] = {"Id": self.id, "Names": [name], "Labels": labels,
                                      "State": state}
        world.containers[name] = self

    def reload(self) -> None:
        if self.name not in self.world.containers:
            raise NotFound("no such container")
        self.inspect["State"]["Status"] = self.state
        self.attrs = json.loads(json.dumps(self.inspect))

    def exec_run(self, argv: list[str]) -> None:
        self.world.log.append(("term", self.name))
        self.state = "exited"  # Buildah stopped on SIGTERM, the builder's shell with it

    def kill(self) -> None:
        self.world.log.append(("kill", self.name))
        self.state = "exited"

    def remove(self, force: bool = False) -> None:
        if self.name not in self.world.containers:
            raise NotFound("no such container")
        self.world.log.append(("rm", self.name))
        del self.world.containers[self.name]

    def start(self) -> None:
        self.world.log.append(("start", self.name))

    def wait(self, **_: object) -> int:
        # A sweeper: "buildah rm IDS" removes those records from the store it mounts.
        command = self.command
        if command[:2] == ["sh", "-ec"]:  # after host-ro's own copies (tui.engine.hostview)
            command = shlex.split(command[2].rsplit("; exec ", 1)[1])
        if command[:2] == ["buildah", "rm"]:
            store = next(m["source"] for m in self.world.created[-1]["mounts"]
                         if m["target"] == "/var/lib/containers")
            path = Path(store) / "storage" / "overlay-containers" / "containers.json"
            records = [r for r in json.loads(path.read_text()) if r["id"] not in command]
            path.write_text(json.dumps(records))
        return 0


class FakeThing:
    """A pod, a volume or a secret."""

    def __init__(self, world: World, kind: str, name: str, labels: dict[str, str]) -> None:
        self.world, self.kind, self.name, self.id = world, kind, name, f"id-{name}"
        self.attrs = {"Name": name, "Labels": labels, "Id": self.id}
        getattr(world, kind)[name] = self

    def remove(self, force: bool = False) -> None:
        self.world.log.append((f"rm-{self.kind}", self.name))
        del getattr(self.world, self.kind)[self.name]


def _matches(labels: dict[str, str], flt: dict[str, str] | None) -> bool:
    if not flt or "label" not in flt:
        return True
    key, _, value = flt["label"].partition("=")
    return key in labels and (not value or labels[key] == value)


class FakeClient:
    def __init__(self, world: World) -> None:
        outer = self

        class Containers:
            def list(self, all: bool = False,  # noqa: A002 - podman-py's name
                     filters: dict[str, str] | None = None) -> list:
                out = []
                for c in list(world.containers.values()):
                    c.attrs["State"] = c.state
                    if (all or c.state == "running") and _matches(c.labels, filters):
                        if filters and filters.get("status") and c.state != filters["status"]:
                            continue
                        out.append(c)
                return out

            def create(self, **kwargs: Any) -> FakeContainer:
                world.created.append(kwargs)
                world.log.append(("create", kwargs["name"]))
                return FakeContainer(world, kwargs["name"], kwargs["labels"],
                                     state="created", command=kwargs["command"])

        class Listing:
            def __init__(self, kind: str) -> None:
                self.kind = kind

            def list(self, filters: dict[str, str] | None = None) -> list:
                return [t for t in getattr(world, self.kind).values()
                        if _matches(t.attrs["Labels"], filters)]

            def get(self, key: str) -> FakeThing:
                for thing in getattr(world, self.kind).values():
                    if key in (thing.id, thing.name):
                        return thing
                raise NotFound(key)

        self.containers = Containers()
        self.pods = Listing("pods")
        self.volumes = Listing("volumes")
        self.secrets = Listing("secrets")
        del outer


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    """pid 100 is alive (started at tick 5000); every other pid of this host is gone."""
    return Machine(HOST, BOOT, fake_proc(tmp_path, {100: 5000}))


LIVE = f"{HOST}:100:5000:{BOOT}"
DEAD = f"{HOST}:200:7000:{BOOT}"
REUSED = f"{HOST}:100:4999:{BOOT}"  # pid 100 once, before the process that has it now
ELSEWHERE = f"otherhost:200:7000:{BOOT}"


def labels(build: str, owner: str | None, **more: str) -> dict[str, str]:
    out = {"buildcage.build": build, **more}
    if owner is not None:
        out[OWNER_LABEL] = owner
    return out


def hexid(name: str) -> str:
    """The 64-hex container id c/storage gives the working container called NAME here."""
    return hashlib.sha256(name.encode()).hexdigest()


def project_store(tmp_path: Path, name: str, strays: dict[str, str]) -> Path:
    """A per-project store whose c/storage lists working containers {name: created}."""
    store = tmp_path / "stores" / name
    records = [{"id": hexid(i), "names": [f"{i}-working-container"], "created": created}
               for i, created in strays.items()]
    path = store / "storage" / "overlay-containers" / "containers.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records))
    return store


def store_mount(store: Path) -> dict[str, Any]:
    return {"Type": "bind", "Source": str(store), "Destination": "/var/lib/containers",
            "RW": True}


def stray_ids(store: Path) -> set[str]:
    path = store / "storage" / "overlay-containers" / "containers.json"
    return {r["names"][0].removesuffix("-working-container")
            for r in json.loads(path.read_text())}


def test_find_orphans_takes_only_what_dead_processes_left(machine):
    world = World()
    FakeContainer(world, "buildcage-aaa", labels("aaa", DEAD), "running")
    FakeContainer(world, "buildcage-pin-aaa-0", labels("aaa", DEAD), "created", started=False)
    FakeThing(world, "volumes", "buildcage-store-aaa", labels("aaa", DEAD))
    FakeContainer(world, "buildcage-bbb", labels("bbb", REUSED), "exited")
    FakeThing(world, "pods", "buildcage-ccc", labels("ccc", DEAD))
    # Not orphans: a live owner's build, another host's, and ones with no owner recorded.
    FakeContainer(world, "buildcage-live", labels("live", LIVE), "running")
    FakeThing(world, "volumes", "buildcage-store-live", labels("live", LIVE))
    FakeContainer(world, "buildcage-far", labels("far", ELSEWHERE), "running")
    FakeContainer(world, "buildcage-pasted", labels("pasted", None), "running")
    FakeThing(world, "volumes", "buildcage-store-junk", labels("junk", "not-an-owner"))
    found = {o.build_id: o for o in find_orphans(FakeClient(world), machine)}
    assert set(found) == {"aaa", "bbb", "ccc"}
    assert found["aaa"].things() == ["container buildcage-aaa", "container buildcage-pin-aaa-0",
                                     "volume buildcage-store-aaa"]
    assert found["bbb"].owner == Owner(HOST, 100, 4999, BOOT)
    assert found["ccc"].things() == ["pod buildcage-ccc"]
    assert found["aaa"].describe() == ("build aaa of buildcage process 200 on testhost, "
                                       "which is gone")


def test_collect_stops_the_builder_gently_sweeps_its_store_then_removes_the_rest(
        machine, tmp_path):
    # The builder was created at 09:00:00; Buildah left a working container at 09:00:05; one
    # from 08:59 is older than the build and not its to remove.
    store = project_store(tmp_path, "p", {"old": "2026-11-29T08:59:00Z",
                                          "stray": "2026-11-29T09:00:05.5Z"})
    world = World()
    FakeContainer(world, "buildcage-aaa", labels("aaa", DEAD), "running",
                  mounts=[store_mount(store)])
    FakeContainer(world, "buildcage-pin-aaa-0", labels("aaa", DEAD), "created", started=False)
    FakeThing(world, "volumes", "buildcage-store-aaa", labels("aaa", DEAD))
    FakeThing(world, "secrets", "buildcage-aaa-args", {})  # podman keeps no labels on secrets
    FakeThing(world, "secrets", "buildcage-live-args", {})
    FakeContainer(world, "buildcage-live", labels("live", LIVE), "running")
    client = FakeClient(world)
    report = collect(client, find_orphans(client, machine), stop_timeout=1.0)
    assert world.log == [
        ("term", "buildcage-aaa"),  # SIGTERM to Buildah first: it cleans up itself
        ("rm", "buildcage-aaa"),
        ("create", "buildcage-aaa-gc-sweep"), ("start", "buildcage-aaa-gc-sweep"),
        ("rm", "buildcage-aaa-gc-sweep"),
        ("rm", "buildcage-pin-aaa-0"),
        ("rm-secrets", "buildcage-aaa-args"),
        ("rm-volumes", "buildcage-store-aaa"),
    ]
    assert set(world.secrets) == {"buildcage-live-args"}
    assert stray_ids(store) == {"old"}
    sweeper = world.created[0]
    assert sweeper["command"] == ["buildah", "rm", hexid("stray")]
    assert sweeper["labels"][OWNER_LABEL] == str(current_owner())  # the collector's own
    assert set(world.containers) == {"buildcage-live"}
    assert report.left == []
    assert report.removed == [f"{t} (build aaa of buildcage process 200 on testhost, which is "
                              "gone)"
                              for t in ("container buildcage-aaa",
                                        "container buildcage-pin-aaa-0",
                                        "secret buildcage-aaa-args",
                                        "volume buildcage-store-aaa")]


def test_dry_run_removes_nothing(machine):
    world = World()
    FakeContainer(world, "buildcage-aaa", labels("aaa", DEAD), "running")
    client = FakeClient(world)
    report = collect(client, find_orphans(client, machine), dry_run=True)
    assert world.log == [] and set(world.containers) == {"buildcage-aaa"}
    assert report.removed == ["container buildcage-aaa (build aaa of buildcage process 200 on "
                              "testhost, which is gone)"]


def test_an_orphan_whose_store_is_locked_by_a_build_is_left_for_later(machine, tmp_path):
    store = project_store(tmp_path, "p", {"stray": "2026-11-29T09:00:05Z"})
    world = World()
    FakeContainer(world, "buildcage-aaa", labels("aaa", DEAD), "running",
                  mounts=[store_mount(store)])
    client = FakeClient(world)
    with open(store_lock_path(store), "w") as lock:  # a running build of that project
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = collect(client, find_orphans(client, machine), stop_timeout=1.0)
    assert world.log == [] and stray_ids(store) == {"stray"}
    assert "in use by a build; left for later" in report.left[0]


def test_the_store_is_not_swept_while_another_build_runs_on_it(machine, tmp_path):
    store = project_store(tmp_path, "p", {"stray": "2026-11-29T09:00:05Z"})
    world = World()
    FakeContainer(world, "buildcage-aaa", labels("aaa", DEAD), "running",
                  mounts=[store_mount(store)])
    # Another builder on the same store (its owner on another host: it holds no flock here).
    FakeContainer(world, "buildcage-far", labels("far", ELSEWHERE), "running",
                  mounts=[store_mount(store)])
    client = FakeClient(world)
    report = collect(client, find_orphans(client, machine), stop_timeout=1.0)
    assert ("rm", "buildcage-aaa") in world.log
    assert not any(kind == "create" for kind, _ in world.log)
    assert stray_ids(store) == {"stray"}
    assert "not swept, buildcage-far runs on that store" in report.left[0]


def test_claiming_a_store_collects_a_dead_processes_builder_under_the_held_lock(
        machine, tmp_path):
    plan = plan_for(tmp_path, "project", project="p")
    store = plan.store_dir
    assert store is not None
    store.mkdir(parents=True)
    world = World()
    FakeContainer(world, "buildcage-aaa", labels("aaa", DEAD), "running",
                  mounts=[store_mount(store)])
    client = FakeClient(world)
    said: list[str] = []
    # The runner holds the store's flock while it claims the store: no deadlock on it.
    with open(store_lock_path(store), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        claim_store(client, plan, lambda: False, said.append, poll=0.01, machine=machine)
    assert ("term", "buildcage-aaa") in world.log and "buildcage-aaa" not in world.containers
    assert said == ["removed container buildcage-aaa: left on this store by build aaa of "
                    "buildcage process 200 on testhost, which is gone"]


def test_claiming_a_store_waits_for_a_builder_it_cannot_check(machine, tmp_path):
    plan = plan_for(tmp_path, "project", project="p")
    store = plan.store_dir
    assert store is not None
    world = World()
    FakeContainer(world, "buildcage-far", labels("far", ELSEWHERE), "running",
                  mounts=[store_mount(store)])
    FakeContainer(world, "buildcage-other-store", labels("x", DEAD), "running",
                  mounts=[store_mount(tmp_path / "elsewhere")])
    polls: list[int] = []

    def canceled() -> bool:
        polls.append(1)
        if len(polls) == 3:
            del world.containers["buildcage-far"]  # that build ended
        return len(polls) > 5

    said: list[str] = []
    claim_store(FakeClient(world), plan, canceled, said.append, poll=0.01, machine=machine)
    assert len(polls) == 3  # waited twice, then the store was free
    assert said == [f"waiting for builder buildcage-far (owner {ELSEWHERE}), which is using "
                    f"the store of project p"]
    assert "buildcage-other-store" in world.containers  # another store's: not this one's business


# -- the sweeper is the builder's twin -------------------------------------------------------------
def test_sweeper_has_the_builders_mounts_devices_and_limits():
    attrs = json.loads((INSPECT / "host-ro.json").read_text())
    use = store_use(attrs)
    assert use is not None
    assert use.root == Path("/root/.local/share/buildcage/stores/host-ro/inspect-sample/storage")
    kwargs = sweeper_kwargs(attrs, ["x1"], {"k": "v"})
    assert kwargs["command"] == ["buildah", "rm", "x1"]
    assert kwargs["image"] == attrs["Image"]
    assert {(m["source"], m["target"], m["read_only"]) for m in kwargs["mounts"]} == {
        (m["Source"], m["Destination"], not m["RW"]) for m in attrs["Mounts"]}
    assert kwargs["devices"] == ["/dev/fuse:/dev/fuse:rwm"]
    assert {"Name": "nofile", "Soft": 1024, "Hard": 1024} in kwargs["ulimits"]
    # (the build phase's builder: no network, so neither has the sweeper)
    assert kwargs["pids_limit"] == 4096 and kwargs["network_mode"] == "none"
    assert "userns_mode" not in kwargs


def started_host_ro_attrs() -> dict[str, Any]:
    """A started host-ro builder's inspect data: each overlay volume of the host store shows as
    podman 4.3.1 showed one here, a read-write bind of the container's own merge directory
    (gone once it stops) with the source as its lowerdir."""
    attrs = json.loads((INSPECT / "host-ro.json").read_text())
    userdata = "/var/lib/containers/storage/overlay-containers/c0ffee/userdata/overlay"
    attrs["Mounts"] = [m for m in attrs["Mounts"] if m["Destination"] != "/var/lib/shared"] + [
        {"Type": "bind", "Source": f"{userdata}/{n}/merge",
         "Destination": f"/var/lib/shared/{part}", "Driver": "", "Mode": "", "RW": True,
         "Propagation": "private",
         "Options": [f"lowerdir=/var/lib/containers/storage/{part}",
                     f"upperdir={userdata}/{n}/upper", f"workdir={userdata}/{n}/work"]}
        for n, part in enumerate(("overlay", "overlay-images", "overlay-layers"))]
    return attrs


def test_a_host_ro_builders_sweeper_gets_the_same_overlays_and_its_own_lock_files():
    attrs = started_host_ro_attrs()
    kwargs = sweeper_kwargs(attrs, ["x1"], {})
    # Not the builder's merge directories (the sweep runs after the builder is removed: podman
    # would refuse a bind of a missing path and the working containers would stay).
    assert not [m for m in kwargs["mounts"] if "/merge" in m["source"]]
    assert kwargs["overlay_volumes"] == [
        {"source": f"/var/lib/containers/storage/{part}", "destination": f"/var/lib/shared/{part}",
         "options": []} for part in ("overlay", "overlay-images", "overlay-layers")]
    # Buildah's read locks land on the sweeper's own files, never on the host podman's.
    assert kwargs["command"][:2] == ["sh", "-ec"]
    script = kwargs["command"][2]
    assert script.endswith("; exec buildah rm x1")
    for lock in LOCKS:
        assert f"printf %064d 0 > /var/lib/shared/{lock}" in script
    assert store_use(attrs) is not None  # the store it sweeps is still the project's


def test_sweeper_maps_the_same_user_ids_as_its_builder():
    attrs = json.loads((INSPECT / "isolated.json").read_text())
    assert store_use(attrs) is None  # a fresh volume: removed whole, never swept
    kwargs = sweeper_kwargs(attrs, ["x1"], {})
    assert kwargs["userns_mode"] == "private"
    assert kwargs["idmappings"]["UIDMap"] == [
        {"container_id": 0, "host_id": 200000, "size": 65536}]
    assert kwargs["volumes"] == {"buildcage-store-0123456789ab": {
        "bind": "/var/lib/containers", "mode": "rw"}}


def test_a_cancel_sweep_leaves_the_store_alone_while_another_builder_writes_it(tmp_path):
    """The runner's own sweep after a cancel: a working container created after this build
    started may be another builder's (one whose process died lost the flock, not the store)."""
    import calendar

    from tui.engine.runner import BuildRunner

    plan = plan_for(tmp_path, "project", project="p")
    assert plan.store_dir is not None
    plan.store_dir.parent.mkdir(parents=True)
    project_store(tmp_path / "x", "p", {"theirs": "2026-11-29T09:00:05Z"}).rename(plan.store_dir)
    world = World()
    FakeContainer(world, "buildcage-orphan-build", labels("orphan", DEAD), "running",
                  mounts=[store_mount(plan.store_dir)])
    runner = BuildRunner(FakeClient(world), plan, lambda event: None)  # type: ignore[arg-type]
    # Set when the build phase starts: earlier than "theirs" here.
    runner._container_started = calendar.timegm((2026, 11, 29, 9, 0, 0))  # noqa: SLF001 - the runner's start time
    left = runner._sweep()  # noqa: SLF001 - the cancel sweep alone, without a real build
    assert world.created == []  # no sweeper
    assert stray_ids(plan.store_dir) == {"theirs"}
    assert left == [f"1 Buildah working containers in {plan.store_dir / 'storage'}: not swept, "
                    "buildcage-orphan-build runs on that store"]


def test_a_host_ro_cancel_sweep_reads_the_host_store_as_its_phases_do(tmp_path):
    import calendar

    from tui.engine.runner import BuildRunner

    plan = plan_for(tmp_path, "host-ro", project="p")
    assert plan.store_dir is not None
    plan.store_dir.parent.mkdir(parents=True)
    project_store(tmp_path / "x", "p", {"stray": "2026-11-29T09:00:05Z"}).rename(plan.store_dir)
    world = World()
    runner = BuildRunner(FakeClient(world), plan, lambda event: None)  # type: ignore[arg-type]
    runner._container_started = calendar.timegm((2026, 11, 29, 9, 0, 0))  # noqa: SLF001 - the runner's start time
    assert runner._sweep() == []  # noqa: SLF001 - the cancel sweep alone, without a real build
    [sweeper] = world.created
    assert sweeper["overlay_volumes"] == create_kwargs(plan, "build")["overlay_volumes"]
    assert sweeper["command"] == plan.on_store(["buildah", "rm", hexid("stray")])
    assert all(f"printf %064d 0 > /var/lib/shared/{lock}" in sweeper["command"][2]
               for lock in LOCKS)
    assert stray_ids(plan.store_dir) == set()


def test_a_cancel_sweep_never_runs_when_podman_cannot_say_who_uses_the_store(tmp_path):
    import calendar

    from tui.engine.runner import BuildRunner

    plan = plan_for(tmp_path, "project", project="p")
    assert plan.store_dir is not None
    plan.store_dir.parent.mkdir(parents=True)
    project_store(tmp_path / "x", "p", {"theirs": "2026-11-29T09:00:05Z"}).rename(plan.store_dir)
    world = World()
    client = FakeClient(world)

    def down(**kwargs: Any) -> list:
        raise ConnectionError("podman went away")

    client.containers.list = down  # type: ignore[method-assign]
    runner = BuildRunner(client, plan, lambda event: None)  # type: ignore[arg-type]
    runner._container_started = calendar.timegm((2026, 11, 29, 9, 0, 0))  # noqa: SLF001 - the runner's start time
    # It says so instead of raising (the clean-up after it must run).
    [left] = runner._sweep()  # noqa: SLF001 - the cancel sweep alone, without a real build
    assert "not swept, who else uses that store cannot be told (podman went away)" in left
    assert world.created == [] and stray_ids(plan.store_dir) == {"theirs"}


# -- secrets that no labelled thing tells of -------------------------------------------------------
def secret_plan(tmp_path: Path, owner: str = DEAD, project: str = "p") -> Any:
    """A plan with all three kinds of secret (auth file, build arguments, a --secret file)."""
    import dataclasses

    token, auth = tmp_path / f"token-{project}", tmp_path / f"auth-{project}.json"
    token.write_text("value-of-the-token")
    auth.write_text('{"auths": {"127.0.0.1:5000": {"auth": "value-of-the-auth"}}}')
    plan = plan_for(tmp_path, "project", project=project)
    return dataclasses.replace(plan, owner=owner, authfile=auth,
                               build_args=(("PASSWORD", "value-of-the-arg"),),
                               secrets=(("token", str(token)),))


def make_fake_secrets(world: World) -> Any:
    def make(client: Any, plan: Any) -> list[str]:
        for name in plan.secret_data():
            FakeThing(world, "secrets", name, {})
        return list(plan.secret_data())
    return make


def test_a_builds_secret_record_is_written_before_its_secrets_and_holds_no_value(tmp_path):
    from tui.engine.secret_owners import RECORDS, secret_names
    from tui.engine.stores import release

    plan = secret_plan(tmp_path)
    record = plan.data_dir / RECORDS / f"{plan.build_id}.json"
    world = World()
    seen: list[dict[str, Any]] = []

    def make(client: Any, plan: Any) -> list[str]:
        seen.append(json.loads(record.read_text()))  # already there: a kill now leaves it
        assert record.stat().st_mode & 0o777 == 0o600
        assert record.parent.stat().st_mode & 0o777 == 0o700
        return make_fake_secrets(world)(client, plan)

    state = prepare(FakeClient(world), plan, pin=False, make_secrets=make)  # type: ignore[arg-type]
    assert seen[0] == {"build": plan.build_id, "owner": DEAD, "service": "local",
                       "secrets": secret_names(plan)}
    # Every name either runner gives a secret is in it (local podman secrets, kube Secrets).
    assert set(world.secrets) <= set(secret_names(plan))
    assert {plan.kube_secret_name(p.name) for p in plan.phases()} <= set(secret_names(plan))
    assert "value-of" not in record.read_text()
    assert release(FakeClient(world), state) == []  # type: ignore[arg-type]
    assert world.secrets == {} and not record.exists()


def test_no_record_for_a_plan_without_owner_or_without_secrets(tmp_path):
    import dataclasses

    from tui.engine.secret_owners import write_record

    assert write_record(secret_plan(tmp_path, owner="")) is None  # never collected
    plain = dataclasses.replace(secret_plan(tmp_path), authfile=None, build_args=(), secrets=())
    assert write_record(plain) is None
    assert not (plain.data_dir / "secret-owners").exists()


def test_the_record_stays_while_some_secret_may_still_exist(tmp_path):
    from tui.engine.secret_owners import RECORDS
    from tui.engine.stores import release

    plan = secret_plan(tmp_path)
    record = plan.data_dir / RECORDS / f"{plan.build_id}.json"
    world = World()

    def half(client: Any, plan: Any) -> list[str]:
        FakeThing(world, "secrets", plan.secret_name("auth"), {})
        raise RuntimeError("podman went away")  # one made, not returned: the state never knew

    with pytest.raises(RuntimeError):
        prepare(FakeClient(world), plan, pin=False, make_secrets=half)  # type: ignore[arg-type]
    assert record.exists()  # for gc, once this process is gone

    class Stuck(FakeThing):
        def remove(self, force: bool = False) -> None:
            raise RuntimeError("podman went away")

    world = World()
    other = secret_plan(tmp_path, project="q")
    state = prepare(FakeClient(world), other, pin=False,  # type: ignore[arg-type]
                    make_secrets=make_fake_secrets(world))
    Stuck(world, "secrets", other.secret_name("args"), {})
    left = release(FakeClient(world), state)  # type: ignore[arg-type]
    assert left == [f"podman secret {other.secret_name('args')} (podman went away)"]
    assert (other.data_dir / RECORDS / f"{other.build_id}.json").exists()


def test_secrets_a_dead_process_recorded_are_orphans_though_nothing_is_labelled(
        machine, tmp_path):
    from tui.engine.secret_owners import RECORDS, write_record

    world = World()
    dead = secret_plan(tmp_path, DEAD, "dead")
    live = secret_plan(tmp_path, LIVE, "live")
    far = secret_plan(tmp_path, ELSEWHERE, "far")
    for plan in (dead, live, far):
        write_record(plan)
        make_fake_secrets(world)(None, plan)
    # Named like the dead build's, but not one of its names: never taken.
    FakeThing(world, "secrets", f"buildcage-{dead.build_id}x-args", {})
    client = FakeClient(world)
    data = dead.data_dir
    [orphan] = find_orphans(client, machine, data)
    why = f"build {dead.build_id} of buildcage process 200 on testhost, which is gone"
    mine = [dead.secret_name(w) for w in ("auth", "args", "s-token")]
    assert orphan.things() == [f"secret {name}" for name in mine]
    assert orphan.describe() == why
    assert collect(client, [orphan], dry_run=True).removed == [f"secret {n} ({why})"
                                                                for n in mine]
    assert world.log == []

    report = collect(client, find_orphans(client, machine, data))
    assert report.removed == [f"secret {n} ({why})" for n in mine] and report.left == []
    assert not set(mine) & set(world.secrets)
    assert f"buildcage-{dead.build_id}x-args" in world.secrets
    assert len([n for n in world.secrets if live.build_id in n]) == 3  # its owner lives
    assert len([n for n in world.secrets if far.build_id in n]) == 3  # cannot be checked
    records = {p.name for p in (data / RECORDS).iterdir()}
    assert records == {f"{live.build_id}.json", f"{far.build_id}.json"}
    assert find_orphans(client, machine, data) == []


def test_another_podman_services_records_are_left_to_it(machine, tmp_path):
    """A build on a remote service records that service: a gc against this machine's podman
    neither finds its secrets nor removes its record as "alone" (they live over there)."""
    from tui.engine.secret_owners import write_record

    world = World()
    remote = secret_plan(tmp_path, DEAD, "remote")
    record = write_record(remote, "build-host:/var/lib/containers/storage")
    local = secret_plan(tmp_path, DEAD, "local")
    write_record(local)
    make_fake_secrets(world)(None, local)
    client = FakeClient(world)
    [orphan] = find_orphans(client, machine, remote.data_dir)
    assert orphan.build_id == local.build_id
    collect(client, [orphan])
    assert record is not None and record.exists()


def test_a_dead_processes_record_with_no_secret_left_is_named_and_removed(machine, tmp_path):
    from tui.engine.secret_owners import write_record

    plan = secret_plan(tmp_path)
    record = write_record(plan)  # killed before its first secret existed
    client = FakeClient(World())
    [orphan] = find_orphans(client, machine, plan.data_dir)
    assert orphan.things() == [f"record {record}"]
    report = collect(client, [orphan])
    assert report.removed == [f"record {record} ({orphan.describe()})"]
    assert record is not None and not record.exists()


def test_a_killed_builds_containers_and_recorded_secrets_go_together(machine, tmp_path):
    from tui.engine.secret_owners import write_record

    world = World()
    plan = secret_plan(tmp_path)
    record = write_record(plan)
    make_fake_secrets(world)(None, plan)
    FakeContainer(world, f"buildcage-{plan.build_id}-fetch", labels(plan.build_id, DEAD),
                  "exited")
    client = FakeClient(world)
    [orphan] = find_orphans(client, machine, plan.data_dir)
    assert orphan.things()[0] == f"container buildcage-{plan.build_id}-fetch"
    assert len(orphan.things()) == 4  # and its three secrets; the record goes quietly
    report = collect(client, [orphan])
    assert len(report.removed) == 4 and report.left == []
    assert world.secrets == {} and world.containers == {}
    assert record is not None and not record.exists()


def test_records_that_are_not_plainly_records_are_skipped(tmp_path):
    from tui.engine.secret_owners import RECORDS, read_records

    folder = tmp_path / RECORDS
    folder.mkdir()
    good = {"build": "abc", "owner": DEAD, "secrets": ["buildcage-abc-args", "my-own-secret"]}
    (folder / "abc.json").write_text(json.dumps(good))
    (folder / "other.json").write_text(json.dumps({**good, "build": "abc"}))  # not its name
    (folder / "abc.txt").write_text(json.dumps(good))
    (folder / "bad name.json").write_text(json.dumps({**good, "build": "bad name"}))
    (folder / "junk.json").write_text("{not json")
    (folder / "big.json").write_text(json.dumps({**good, "build": "big"}) + " " * 70000)
    (tmp_path / "elsewhere.json").write_text(json.dumps({**good, "build": "link"}))
    (folder / "link.json").symlink_to(tmp_path / "elsewhere.json")
    [record] = read_records(tmp_path)
    assert (record.build_id, record.owner) == ("abc", DEAD)
    assert record.names == ("buildcage-abc-args",)  # never a secret that is not the build's
    assert list(read_records(tmp_path / "missing")) == []


def test_secret_copies_podman_kube_play_left_are_orphans_unless_a_live_build_recorded_them(
        machine, tmp_path):
    """podman kube play copies a Pod's Secret into an unlabelled volume of the Secret's name;
    one whose build no live process recorded is collected, by exact kind of name only."""
    from tui.engine.secret_owners import write_record

    world = World()
    live = secret_plan(tmp_path, LIVE, "live")
    dead = secret_plan(tmp_path, DEAD, "dead")
    for plan in (live, dead):
        write_record(plan)
        FakeThing(world, "volumes", plan.kube_secret_name("fetch"), {})
    old = "0123456789ab"  # an older buildcage's kube build: no record at all
    FakeThing(world, "volumes", f"buildcage-{old}-build", {})  # podman said no CreatedAt: old
    young = FakeThing(world, "volumes", "buildcage-00000000000f-build", {})  # being played now?
    young.attrs["CreatedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    # Not copies: buildcage's own labelled volume, a user's volume, names of another shape.
    FakeThing(world, "volumes", f"buildcage-{old}-fetch", labels(old, LIVE))
    for name in (f"buildcage-{old}-cache", f"buildcage-{old}x-fetch", "buildcage-store-fetch",
                 f"mine-{old}-fetch"):
        FakeThing(world, "volumes", name, {})
    client = FakeClient(world)
    found = {o.build_id: o for o in find_orphans(client, machine, data=live.data_dir)}
    assert set(found) == {dead.build_id, old}
    assert found[dead.build_id].things()[0] == f"volume {dead.kube_secret_name('fetch')}"
    assert found[old].things() == [f"volume buildcage-{old}-build"]
    assert found[old].describe().startswith(f"build {old} of a buildcage process that left no")
    report = collect(client, list(found.values()))
    assert report.left == []
    assert {name for kind, name in world.log if kind == "rm-volumes"} == {
        dead.kube_secret_name("fetch"), f"buildcage-{old}-build"}
    assert live.kube_secret_name("fetch") in world.volumes
    assert "buildcage-00000000000f-build" in world.volumes


def test_when_podman_made_a_volume_is_read_from_its_nanosecond_stamp():
    from tui.engine.secret_copies import created

    def volume(stamp: str) -> Any:
        return type("V", (), {"attrs": {"CreatedAt": stamp}})()

    assert created(volume("2026-11-29T10:49:18.619949293Z")) == \
        datetime(2026, 11, 29, 10, 49, 18, 619949, tzinfo=UTC).timestamp()
    assert created(volume("2026-11-29T11:49:18.5+01:00")) == \
        datetime(2026, 11, 29, 10, 49, 18, 500000, tzinfo=UTC).timestamp()
    assert created(volume("0001-01-01T00:00:00Z")) == 0.0  # podman's zero time
    assert created(volume("2026-11-29T10:49:18Z")) == \
        datetime(2026, 11, 29, 10, 49, 18, tzinfo=UTC).timestamp()
    assert created(volume("")) == 0.0 and created(volume("yesterday")) == 0.0


def test_a_secret_copy_a_container_still_uses_is_not_reported_as_left(machine, tmp_path):
    class InUse(FakeThing):
        def remove(self, force: bool = False) -> None:
            raise RuntimeError("volume is being used by the following container(s): abc")

    world = World()
    InUse(world, "volumes", "buildcage-0123456789ab-build", {})
    client = FakeClient(world)
    report = collect(client, find_orphans(client, machine, data=tmp_path))
    assert report.left == [] and report.removed == []
    assert "buildcage-0123456789ab-build" in world.volumes


def _build_dir(data: Path, build_id: str, owner: str | None, age: float = 0.0,
               snapshot: bool = True) -> list[Path]:
    made = []
    for kind in ("builds", "snapshots") if snapshot else ("builds",):
        path = data / kind / build_id
        (path / "facts").mkdir(parents=True)
        made.append(path)
    if owner is not None:
        (data / "builds" / build_id / "owner").write_text(owner)
    stamp = time.time() - age
    for path in made:
        for item in [path, *path.iterdir()]:
            os.utime(item, (stamp, stamp), follow_symlinks=False)
    return made


def test_a_builds_directories_go_once_their_owner_is_gone_and_podman_holds_nothing_of_it(
        machine, tmp_path):
    """A process killed before its first container left DATA/builds/ID and DATA/snapshots/ID
    (a copy of a private context) that nothing in podman points to."""
    data = tmp_path / "data"
    dead = _build_dir(data, "aaaaaaaaaaaa", DEAD)
    live = _build_dir(data, "bbbbbbbbbbbb", LIVE)
    young = _build_dir(data, "cccccccccccc", None, age=3600)  # an older version, still at work?
    old = _build_dir(data, "dddddddddddd", None, age=3 * 24 * 3600, snapshot=False)
    held = _build_dir(data, "eeeeeeeeeeee", None, age=3 * 24 * 3600)  # a live container's
    with_pod = _build_dir(data, "ffffffffffff", DEAD)  # its containers go first, then these
    (data / "builds" / "not-a-build").mkdir()
    (data / "snapshots" / "012345678901").symlink_to(tmp_path)  # a link: never followed
    (data / "snapshots" / "aaaaaaaaaaab").symlink_to(tmp_path)  # beside a dead build's own dir
    (data / "builds" / "aaaaaaaaaaab").mkdir()
    (data / "builds" / "aaaaaaaaaaab" / "owner").write_text(DEAD)
    world = World()
    FakeContainer(world, "buildcage-eee", labels("eeeeeeeeeeee", LIVE), "running")
    FakeContainer(world, "buildcage-fff", labels("ffffffffffff", DEAD), "exited")
    client = FakeClient(world)
    found = {o.build_id: o for o in find_orphans(client, machine, data=data)}
    assert set(found) == {"aaaaaaaaaaaa", "aaaaaaaaaaab", "dddddddddddd", "ffffffffffff"}
    assert found["aaaaaaaaaaab"].dirs == [data / "builds" / "aaaaaaaaaaab"]  # not the link
    assert found["aaaaaaaaaaaa"].dirs == dead and found["dddddddddddd"].dirs == old
    assert found["ffffffffffff"].dirs == with_pod
    assert found["dddddddddddd"].owner is None
    assert found["aaaaaaaaaaaa"].things() == [f"directory {p}" for p in dead]
    report = collect(client, list(found.values()))
    assert report.left == []
    assert f"directory {dead[1]} (build aaaaaaaaaaaa of buildcage process 200 on testhost, " \
           "which is gone)" in report.removed
    assert world.log == [("rm", "buildcage-fff")]
    for path in dead + old + with_pod:
        assert not path.exists()
    for path in live + young + held:
        assert path.is_dir()
    assert (data / "snapshots" / "012345678901").is_symlink() and tmp_path.is_dir()
    assert (data / "snapshots" / "aaaaaaaaaaab").is_symlink()


def test_prepare_writes_the_owner_before_anything_else_of_the_build(tmp_path):
    from tui.engine.secret_owners import RECORDS

    plan = secret_plan(tmp_path)
    seen: list[str] = []

    def make(client: Any, plan: Any) -> list[str]:
        seen.append((plan.build_dir / "owner").read_text())
        assert (plan.data_dir / RECORDS / f"{plan.build_id}.json").exists()
        return []

    state = prepare(FakeClient(World()), plan, pin=False, make_secrets=make)  # type: ignore[arg-type]
    assert seen == [DEAD]
    assert (plan.build_dir / "owner").stat().st_mode & 0o777 == 0o600
    from tui.engine.stores import release

    release(FakeClient(World()), state)  # type: ignore[arg-type]
    assert not plan.build_dir.exists()
