"""Orphans: containers, pods and volumes a buildcage process made and left behind when it died.

Every container, pod and volume a build makes is labelled ``buildcage.owner=HOST:PID:START:BOOT``
(the process that runs the build: its host name, pid, start time in clock ticks after boot from
``/proc/PID/stat`` field 22, and the boot id), through ``BuildPlan.labels()`` once the runner has
``owned`` the plan. A pid alone is not enough: pids are reused, start times are not.

An orphan is something so labelled whose owner is provably gone: same host, and the pid is not
alive, or alive with another start time, or the machine booted since. Things of another host, or
without an owner label (a pasted ``podman run``, an older buildcage), are never collected: a
process that cannot be checked is taken for alive. That is also why collecting never touches a
build that still runs: its owner is alive.

Collecting an orphan is the careful cancel of the runner, after the fact: each running container
gets SIGTERM to Buildah first (it removes its working containers itself), then the kill; then the
persistent store it wrote is swept of working containers Buildah still left, under that store's
lock and only while no other builder runs on it; then pins, pods, secrets and volumes go.

Secrets carry no labels (podman 4.3) and exist before a build's first container: a process
killed in between leaves secrets only its record tells of (``tui.engine.secret_owners``); a
record whose owner is gone makes an orphan of its secrets, whether or not anything labelled of
that build is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from podman.errors import NotFound

from tui.engine import build_dirs, hostview, secret_copies, secret_owners
from tui.engine.config import data_dir
from tui.engine.containers import podman_time, remove_container, run_once, stop_gracefully
from tui.engine.paths import open_lock, store_lock_path
from tui.engine.plan import DEBUG_DIR, FACTS_DIR, MOUNT_RECORD, SHARED_STORE, BuildPlan
from tui.engine.profiles import HOST_STORE
from tui.engine.stores import store_root, stray_working_containers

OWNER_LABEL = "buildcage.owner"
BUILD_LABEL = "buildcage.build"
PROC = Path("/proc")
_NEVER = "0001-01-01T00:00:00Z"


# -- owners -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    """The process a container, pod or volume belongs to."""

    host: str
    pid: int
    start: int
    """Clock ticks after boot (``/proc/PID/stat`` field 22): tells a reused pid apart."""
    boot: str = ""
    """This boot's id (short): a process of an earlier boot is gone whatever its pid."""

    def __str__(self) -> str:
        parts = [self.host, str(self.pid), str(self.start)] + ([self.boot] if self.boot else [])
        return ":".join(parts)

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.split(":")
        if len(parts) not in (3, 4) or not parts[0]:
            return None
        try:
            pid, start = int(parts[1]), int(parts[2])
        except ValueError:
            return None
        if pid <= 0:
            return None
        return cls(parts[0], pid, start, parts[3] if len(parts) == 4 else "")


def process_start(pid: int, proc: Path = PROC) -> int | None:
    """Start time of process ``pid`` (field 22 of ``/proc/PID/stat``), None if there is none
    or it has exited already (a zombie that its parent has not reaped yet runs nothing)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # Field 2 is the command in parentheses and may itself hold spaces and ")": split after it.
    rest = text.rpartition(")")[2].split()
    if not rest or rest[0] in ("Z", "X", "x"):  # rest[0] is field 3, the state
        return None
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def boot_id(proc: Path = PROC) -> str:
    try:
        text = (proc / "sys" / "kernel" / "random" / "boot_id").read_text()
    except OSError:
        return ""
    return text.strip().replace("-", "")[:12]


@dataclass(frozen=True)
class Machine:
    """The machine owners are checked on: its host name, boot id and /proc (injectable)."""

    host: str
    boot: str
    proc: Path = PROC
    usable: bool = True
    """False when this process cannot read its own /proc entry: then nobody can be shown to
    be gone, and nothing is ever collected (better a leftover than a live build removed)."""

    @classmethod
    def here(cls, proc: Path = PROC) -> Machine:
        # Owner labels are colon-separated; a host name never holds one, but be sure.
        host = socket.gethostname().replace(":", "-") or "localhost"
        return cls(host, boot_id(proc), proc, process_start(os.getpid(), proc) is not None)

    def owner(self, pid: int | None = None) -> Owner:
        """The owner value of process ``pid`` (default: this process)."""
        pid = os.getpid() if pid is None else pid
        start = process_start(pid, self.proc)
        if start is None:
            raise LookupError(f"no process {pid} in {self.proc}")
        return Owner(self.host, pid, start, self.boot)

    def gone(self, owner: Owner) -> bool:
        """True only when ``owner`` is provably not running: never for another host's."""
        if owner.host != self.host or not self.usable:
            return False
        if owner.boot and self.boot and owner.boot != self.boot:
            return True
        return process_start(owner.pid, self.proc) != owner.start


_owners: dict[int, Owner] = {}


def current_owner() -> Owner:
    """This process as an owner (computed once per process; a fork gets its own)."""
    pid = os.getpid()
    if pid not in _owners:
        _owners[pid] = Machine.here().owner(pid)
    return _owners[pid]


def owner_label() -> dict[str, str]:
    """This process's owner label for something made outside a plan (doctor's test
    container, a gc's sweeper); none where /proc cannot tell."""
    try:
        return {OWNER_LABEL: str(current_owner())}
    except LookupError:
        return {}


def owned(plan: BuildPlan) -> BuildPlan:
    """The plan with this process as its owner: everything made from it carries the label
    (none where /proc cannot tell this process's start time: never collected then)."""
    if plan.owner:
        return plan
    try:
        return replace(plan, owner=str(current_owner()))
    except LookupError:
        return plan


# -- finding ------------------------------------------------------------------------------------
def _labels(obj: Any) -> dict[str, str]:
    attrs = getattr(obj, "attrs", {}) or {}
    labels = attrs.get("Labels")
    if labels is None:
        labels = (attrs.get("Config") or {}).get("Labels")
    return dict(labels or {})


def _state(container: Any) -> str:
    state = (getattr(container, "attrs", {}) or {}).get("State")
    if isinstance(state, dict):
        return str(state.get("Status", ""))
    return str(state or "")


def _name(obj: Any) -> str:
    attrs = getattr(obj, "attrs", {}) or {}
    if attrs.get("Name"):
        return str(attrs["Name"]).lstrip("/")
    names = attrs.get("Names") or []
    return str(names[0]).lstrip("/") if names else str(getattr(obj, "id", "?"))[:12]


@dataclass
class Orphan:
    """What one dead process left of one build (or of one probe, doctor check, ...)."""

    owner: Owner | None
    """None for what no process recorded itself as owning (Secret copies of an older
    version, ``tui.engine.secret_copies``; directories without an owner file)."""
    build_id: str
    containers: list[Any] = field(default_factory=list)
    pods: list[Any] = field(default_factory=list)
    volumes: list[Any] = field(default_factory=list)
    copies: list[Any] = field(default_factory=list)
    """Unlabelled volumes podman kube play made of the build's Secrets (secret_copies)."""
    dirs: list[Path] = field(default_factory=list)
    """The build's directories in the data directory (``tui.engine.build_dirs``)."""
    secrets: list[str] = field(default_factory=list)
    """Names of podman secrets its record (``tui.engine.secret_owners``) names that exist."""
    record: Path | None = None
    """That record: it goes once the secrets are gone."""

    def labelled(self) -> bool:
        return bool(self.containers or self.pods or self.volumes)

    def things(self) -> list[str]:
        return ([f"container {_name(c)}" for c in self.containers]
                + [f"pod {_name(p)}" for p in self.pods]
                + [f"volume {_name(v)}" for v in self.volumes + self.copies]
                + [f"secret {name}" for name in self.secrets]
                + [f"directory {path}" for path in self.dirs]
                + ([f"record {self.record}"] if self.record_alone() else []))

    def record_alone(self) -> bool:
        """A record left with nothing else (its process died before its first secret, or
        after its last was removed) is named itself: else it goes quietly with the rest."""
        return self.record is not None and not (self.labelled() or self.secrets or self.copies
                                                or self.dirs)

    def describe(self) -> str:
        what = f"build {self.build_id} of " if self.build_id else ""
        if self.owner is None:
            return f"{what}a buildcage process that left no record of itself"
        return f"{what}buildcage process {self.owner.pid} on {self.owner.host}, which is gone"


def find_orphans(client: Any, machine: Machine | None = None,
                 data: Path | None = None) -> list[Orphan]:
    """Every orphan on the podman service: three labelled list calls and /proc reads; and the
    secrets recorded in data directory ``data`` (default: buildcage's) by processes that are
    gone (one more list call, only when there is such a record)."""
    machine = machine or Machine.here()
    found: dict[tuple[str, str], Orphan] = {}

    def add(obj: Any, kind: str) -> None:
        labels = _labels(obj)
        owner = Owner.parse(labels.get(OWNER_LABEL, ""))
        if owner is None or not machine.gone(owner):
            return
        build = labels.get(BUILD_LABEL, "")
        orphan = found.setdefault((str(owner), build), Orphan(owner, build))
        getattr(orphan, kind).append(obj)

    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        add(container, "containers")
    with contextlib.suppress(Exception):  # a podman without pods: nothing to find there
        for pod in client.pods.list(filters={"label": OWNER_LABEL}):
            add(pod, "pods")
    for volume in client.volumes.list(filters={"label": OWNER_LABEL}):
        add(volume, "volumes")
    records = list(secret_owners.read_records(data or data_dir()))
    dead = [(owner, record) for record in records
            if (owner := Owner.parse(record.owner)) is not None and machine.gone(owner)]
    live = {record.build_id for record in records} - {record.build_id for _, record in dead}
    if dead:  # another podman service's records are not for this one to judge
        here = secret_owners.service_of(client)
        dead = [(o, r) for o, r in dead if r.service == here]
    if dead:
        existing = {str(secret.name) for secret in client.secrets.list()}
        for owner, record in dead:
            orphan = found.setdefault((str(owner), record.build_id),
                                      Orphan(owner, record.build_id))
            orphan.secrets = [name for name in record.names if name in existing]
            orphan.record = record.path
    by_build = {orphan.build_id: orphan for orphan in found.values() if orphan.build_id}

    def orphan_of(build: str, owner: Owner | None) -> Orphan:
        if build not in by_build:
            by_build[build] = found[(str(owner or ""), build)] = Orphan(owner, build)
        return by_build[build]

    now = time.time()
    for build, copies in secret_copies.list_copies(client).items():
        if build in live:  # a live build's copy is its Pod's (or soon will be)
            continue
        if build not in by_build:  # no record here: only once surely no Pod is being made
            copies = [c for c in copies if now - secret_copies.created(c)
                      >= secret_copies.UNRECORDED_AGE]
        if copies:
            orphan_of(build, None).copies = copies
    data_home = data or data_dir()
    if build_dirs.has_any(data_home):  # the listing below only when there is something to judge
        for left in build_dirs.left_dirs(data_home, _live_builds(client, machine),
                                         lambda text: _gone(machine, text)):
            orphan_of(left.build_id, Owner.parse(left.owner)).dirs = list(left.paths)
    return list(found.values())


def _gone(machine: Machine, owner_text: str) -> bool:
    owner = Owner.parse(owner_text)
    return owner is not None and machine.gone(owner)


def _live_builds(client: Any, machine: Machine) -> set[str]:
    """Build ids of every labelled container, pod and volume whose owner is not known gone
    (their directories are theirs; a dead build's go with its containers)."""
    ids: set[str] = set()
    listings = [client.containers.list(all=True, filters={"label": BUILD_LABEL}),
                client.volumes.list(filters={"label": BUILD_LABEL})]
    with contextlib.suppress(Exception):  # a podman without pods
        listings.append(client.pods.list(filters={"label": BUILD_LABEL}))
    for listing in listings:
        for obj in listing:
            labels = _labels(obj)
            if not _gone(machine, labels.get(OWNER_LABEL, "")):
                ids.add(labels.get(BUILD_LABEL, ""))
    return ids


# -- stores -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreUse:
    """The c/storage root a container writes, and the lock file of its store (if it has one)."""

    root: Path
    lock: Path | None


def store_use(attrs: dict[str, Any]) -> StoreUse | None:
    """The store a builder writes, from its inspect data (a fresh volume is not a store here:
    it goes whole)."""
    for mount in attrs.get("Mounts") or []:
        if not isinstance(mount, dict) or mount.get("Type") != "bind" or not mount.get("RW"):
            continue
        source, target = Path(mount.get("Source", "")), mount.get("Destination", "")
        if target == "/var/lib/containers":
            return StoreUse(source / "storage", store_lock_path(source))
        if target == HOST_STORE:
            return StoreUse(source, None)
    return None


def builders_on_store(client: Any, root: Path, exclude_builds: set[str]) -> list[Any]:
    """Running buildcage containers (other builds') that write the store at ``root``."""
    found = []
    for container in client.containers.list(filters={"label": BUILD_LABEL, "status": "running"}):
        if _labels(container).get(BUILD_LABEL) in exclude_builds:
            continue
        try:
            container.reload()
        except NotFound:
            continue
        use = store_use(container.attrs)
        if use is not None and _same(use.root, root) and _state(container) in ("running",
                                                                                "paused"):
            found.append(container)
    return found


def store_busy(client: Any, root: Path, exclude_builds: set[str]) -> str:
    """"" when no other build's builder writes the store at ``root``; else who does, or why
    that cannot be told. A sweep waits either way: the working containers of a builder still
    running look just like the ones a stopped Buildah left."""
    try:
        busy = builders_on_store(client, root, exclude_builds)
    except Exception as exc:  # noqa: BLE001 - podman trouble: cannot tell, so do not touch the store
        return f"who else uses that store cannot be told ({exc})"
    return f"{', '.join(_name(c) for c in busy)} runs on that store" if busy else ""


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


@contextlib.contextmanager
def store_lock(path: Path | None, held: Path | None = None) -> Iterator[bool]:
    """Tries the store's flock without waiting; yields whether the store is ours now."""
    if path is None or (held is not None and _same(path, held)):
        yield True
        return
    try:
        handle = open_lock(path)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()


def overlay_source(mount: dict[str, Any]) -> str | None:
    """The source of an overlay volume (``-v SRC:DST:O``) as a started container's inspect
    shows it, else None. podman 4.3 shows one as a read-write bind of a merge directory of the
    container's own (removed when it stops) with the source as its only ``lowerdir`` (measured
    here; a created container's inspect shows no trace of its overlay volumes)."""
    lowers = [o.removeprefix("lowerdir=") for o in mount.get("Options") or []
              if isinstance(o, str) and o.startswith("lowerdir=")]
    if mount.get("Type") != "bind" or len(lowers) != 1 or ":" in lowers[0] or not lowers[0]:
        return None
    return lowers[0]


def sweeper_kwargs(attrs: dict[str, Any], ids: list[str], labels: dict[str, str]) -> dict[str, Any]:
    """A short-lived container with the mounts, devices and user namespace of the builder whose
    inspect data is ``attrs``, running ``buildah rm`` on ``ids``. The builder's overlay volumes
    (host-ro's view of the host store) become the same overlays of the same sources, and the
    sweeper first takes the same private lists and lock files as the builder's phases: never
    the builder's merge directories (gone once it stopped), never the host's lock files."""
    host = attrs.get("HostConfig") or {}
    every = [m for m in attrs.get("Mounts") or [] if isinstance(m, dict)]
    overlays = [{"destination": m.get("Destination", ""), "source": source, "options": []}
                for m in every if (source := overlay_source(m)) is not None]
    mounts = [m for m in every if m.get("Type") == "bind" and overlay_source(m) is None]
    volumes = [m for m in every if m.get("Type") == "volume"]
    network = host.get("NetworkMode") or "none"
    argv = ["buildah", "rm", *ids]
    if any(o["destination"].startswith(SHARED_STORE + "/") for o in overlays):
        argv = hostview.on_store(SHARED_STORE, argv)
    kwargs: dict[str, Any] = {
        "image": attrs.get("Image") or attrs.get("ImageName"),
        "command": argv,
        "name": f"{_name_of(attrs)}-gc-sweep",
        "labels": labels,
        "mounts": [{"type": "bind", "source": m["Source"], "target": m["Destination"],
                    "read_only": not m.get("RW")} for m in mounts],
        "volumes": {m["Name"]: {"bind": m["Destination"], "mode": "rw" if m.get("RW") else "ro"}
                    for m in volumes},
        "devices": [f"{d['PathOnHost']}:{d['PathInContainer']}:rwm"
                    for d in host.get("Devices") or []],
        # buildah rm needs no network; keep the builder's own only when it is host or none.
        "network_mode": network if network in ("host", "none") else "none",
        "ulimits": [{"Name": u["Name"].removeprefix("RLIMIT_").lower(), "Soft": u["Soft"],
                     "Hard": u["Hard"]} for u in host.get("Ulimits") or []],
    }
    if overlays:
        kwargs["overlay_volumes"] = overlays
    if host.get("PidsLimit"):
        kwargs["pids_limit"] = host["PidsLimit"]
    if host.get("SecurityOpt"):
        kwargs["security_opt"] = list(host["SecurityOpt"])
    maps = host.get("IDMappings") or {}
    if maps.get("UidMap"):
        # The store's files belong to the builder's mapped root: the sweeper maps the same ids.
        def entries(lines: list[str]) -> list[dict[str, int]]:
            out = []
            for line in lines:
                inside, outside, size = (int(x) for x in line.split(":"))
                out.append({"container_id": inside, "host_id": outside, "size": size})
            return out

        kwargs["userns_mode"] = "private"
        kwargs["idmappings"] = {"UIDMap": entries(maps["UidMap"]),
                                "GIDMap": entries(maps.get("GidMap") or maps["UidMap"])}
    return kwargs


def _name_of(attrs: dict[str, Any]) -> str:
    return str(attrs.get("Name") or "buildcage").lstrip("/")


def sweep_store(client: Any, use: StoreUse, since: float, attrs: dict[str, Any],
                builds: set[str]) -> str:
    """Removes Buildah working containers created in the store at or after ``since``; returns
    "" or what is left and why. Never while another build's builder runs on the store: its
    working containers look the same."""
    ids = stray_working_containers(use.root, since)
    if not ids:
        return ""
    busy = store_busy(client, use.root, builds)
    if busy:
        return f"{len(ids)} Buildah working containers in {use.root}: not swept, {busy}"
    labels = {**_labels_of(attrs), **owner_label()}
    try:
        run_once(client, sweeper_kwargs(attrs, ids, labels))
    except Exception as exc:  # noqa: BLE001 - podman gone, image gone: say what stays
        return f"{len(ids)} Buildah working containers in {use.root} ({exc})"
    left = stray_working_containers(use.root, since)
    return f"Buildah working containers {', '.join(i[:12] for i in left)} in {use.root}" \
        if left else ""


def _labels_of(attrs: dict[str, Any]) -> dict[str, str]:
    return dict((attrs.get("Config") or {}).get("Labels") or {})


# -- collecting ---------------------------------------------------------------------------------
@dataclass
class Report:
    removed: list[str] = field(default_factory=list)
    """One line per thing removed (or, dry run, that would be): "container NAME (why)"."""
    left: list[str] = field(default_factory=list)
    """What could not be removed, and why."""


def collect(client: Any, orphans: list[Orphan], *, dry_run: bool = False,
            stop_timeout: float = 15.0, held: Path | None = None) -> Report:
    """Removes the orphans, each the careful way (see the module's doc). ``held`` is the lock
    file of a store the caller holds already (the runner claiming its store)."""
    report = Report()
    for orphan in orphans:
        why = orphan.describe()
        if dry_run:
            report.removed += [f"{thing} ({why})" for thing in orphan.things()]
            continue
        _collect_one(client, orphan, why, report, stop_timeout, held)
    return report


def _inspect(container: Any) -> dict[str, Any] | None:
    """Inspect data, or None when the container is gone (another collector was quicker: a
    container being removed answers with errors other than NotFound too)."""
    try:
        container.reload()
    except Exception:  # noqa: BLE001 - a container being removed answers with other errors too
        return None
    return dict(container.attrs)


def _collect_one(client: Any, orphan: Orphan, why: str, report: Report, stop_timeout: float,
                 held: Path | None) -> None:
    inspected = [(c, _inspect(c)) for c in orphan.containers]
    present = [(c, a) for c, a in inspected if a is not None]
    uses: dict[StoreUse, list[dict[str, Any]]] = {}
    for _, attrs in present:
        use = store_use(attrs)
        if use is not None:
            uses.setdefault(use, []).append(attrs)
    with contextlib.ExitStack() as stack:
        for use in uses:
            if not stack.enter_context(store_lock(use.lock, held)):
                report.left.append(f"{', '.join(orphan.things())} ({why}): the store "
                                   f"{use.root} is in use by a build; left for later")
                return
        # Running ones first, the careful way (Buildah cleans up on SIGTERM); then the sweep
        # of what Buildah still left; then the rest (pins, probes, exited builders).
        running = [c for c, _ in present if _state(c) in ("running", "paused", "stopping")]
        for container in running:
            stop_gracefully(container, stop_timeout)
            _remove(container, why, report)
        for use, attrs_list in uses.items():
            started = [a for a in attrs_list if (a.get("State") or {}).get("StartedAt", _NEVER)
                       != _NEVER]
            if not started:
                continue
            since = min(podman_time(str(a.get("Created", ""))) for a in started) - 1
            problem = sweep_store(client, use, since, started[0], {orphan.build_id})
            if problem:
                report.left.append(problem)
        for container, attrs in present:
            if container not in running:
                _remove(container, why, report)
            _remove_build_files(attrs)
    for pod in orphan.pods + _pods_of(client, present, orphan.pods):
        try:
            pod.remove(force=True)
            report.removed.append(f"pod {_name(pod)} ({why})")
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - cleanup goes on: the pod is reported as left
            report.left.append(f"pod {_name(pod)} ({exc})")
    secrets_gone = True
    if orphan.build_id and orphan.labelled():
        secrets_gone = _remove_secrets(client, orphan.build_id, why, report)
    _remove_recorded(client, orphan, why, report, secrets_gone)
    for line in build_dirs.remove(orphan.dirs):
        report.left.append(f"directory {line}")
    if orphan.dirs:
        report.removed += [f"directory {path} ({why})" for path in orphan.dirs
                           if not path.exists()]
    for copy in orphan.copies:  # after the Pods: a copy a container still uses stays
        problem = secret_copies.remove_copy(client, _name(copy))
        if secret_copies.IN_USE in problem:
            continue  # a Pod of someone else's still reads it: not an orphan after all
        if problem:
            report.left.append(problem)
        else:
            report.removed.append(f"volume {_name(copy)} ({why})")
    for volume in orphan.volumes:
        try:
            volume.remove()  # not forced: never take a container of someone else with it
            report.removed.append(f"volume {_name(volume)} ({why})")
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - cleanup goes on: the volume is reported as left
            report.left.append(f"volume {_name(volume)} ({exc})")


def _remove(container: Any, why: str, report: Report) -> None:
    problem = remove_container(container)
    if problem:
        report.left.append(f"container {_name(container)} ({problem})")
    else:
        report.removed.append(f"container {_name(container)} ({why})")


def _pods_of(client: Any, present: list[tuple[Any, dict[str, Any]]], listed: list[Any]) -> list:
    """Pods of the orphan's containers that were not listed by label themselves."""
    known = {getattr(p, "id", None) for p in listed} | {_name(p) for p in listed}
    pods = []
    for _, attrs in present:
        pod_id = attrs.get("Pod") or ""
        if pod_id and pod_id not in known:
            known.add(pod_id)
            with contextlib.suppress(Exception):
                pods.append(client.pods.get(pod_id))
    return pods


def _remove_secrets(client: Any, build_id: str, why: str, report: Report) -> bool:
    """The podman secrets holding the build's arguments and --secret files (podman 4.3 keeps
    no labels on secrets: they are named after the build). True when none is left."""
    try:
        secrets = [s for s in client.secrets.list()
                   if str(s.name).startswith(f"buildcage-{build_id}-")]
    except Exception as exc:  # noqa: BLE001 - podman trouble: say so, the rest goes on
        report.left.append(f"secrets of build {build_id} ({exc})")
        return False
    gone = True
    for secret in secrets:
        try:
            secret.remove()
            report.removed.append(f"secret {secret.name} ({why})")
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - cleanup goes on: the secret is reported as left
            report.left.append(f"secret {secret.name} ({exc})")
            gone = False
    return gone


def _remove_recorded(client: Any, orphan: Orphan, why: str, report: Report,
                     gone: bool) -> None:
    """The secrets the orphan's record names (by exact name), then the record, unless one of
    the build's secrets could not be removed (``gone`` False): then it stays for later."""
    for name in orphan.secrets:
        try:
            client.secrets.get(name).remove()
            report.removed.append(f"secret {name} ({why})")
        except NotFound:
            pass  # removed with the build's labelled things just now, or by another collector
        except Exception as exc:  # noqa: BLE001 - cleanup goes on: the secret is reported as left
            report.left.append(f"secret {name} ({exc})")
            gone = False
    if orphan.record is None or not gone:
        return
    alone = orphan.record_alone()
    try:
        secret_owners.forget(orphan.record)
    except OSError as exc:
        report.left.append(f"record {orphan.record} ({exc})")
        return
    if alone:
        report.removed.append(f"record {orphan.record} ({why})")


def _remove_build_files(attrs: dict[str, Any]) -> None:
    """Per-build host files a builder mounted (the host-rw overlay record, the per-build
    facts directory, a debug shell's directory), once swept."""
    for mount in attrs.get("Mounts") or []:
        source = Path(mount.get("Source", ""))
        if mount.get("Destination") in (FACTS_DIR, DEBUG_DIR) \
                and source.parent.parent.name == "builds":
            shutil.rmtree(source.parent, ignore_errors=True)
        if (mount.get("Destination") == f"{HOST_STORE}/{MOUNT_RECORD}"
                and source.name.startswith("has-mount-program-")):
            source.unlink(missing_ok=True)


# -- at the start of every build ----------------------------------------------------------------
def collect_on_start(client: Any, warn: Callable[[str], None]) -> None:
    """Collects every orphan (cheap when there is none); says what it removed. Never fails."""
    try:
        orphans = find_orphans(client)
        if not orphans:
            return
        report = collect(client, orphans)
    except Exception as exc:  # noqa: BLE001 - the build itself may still work: say it, go on
        warn(f"could not look for builds left by buildcage processes that are gone: {exc}")
        return
    for orphan in orphans:
        warn(f"removed {', '.join(orphan.things())}: left by {orphan.describe()}")
    for line in report.left:
        warn(f"could not remove {line}")


def claim_store(client: Any, plan: BuildPlan, canceled: Callable[[], bool],
                warn: Callable[[str], None], poll: float = 1.0,
                machine: Machine | None = None) -> None:
    """With the store's flock held: waits until no other build's builder runs on the plan's
    store. A builder whose process died lost that process's flock but may still be running:
    it is collected (it is an orphan); one whose owner cannot be checked is waited for."""
    root = store_root(plan)
    if root is None:
        return
    machine = machine or Machine.here()
    held = store_lock_path(plan.store_dir) if plan.store_dir is not None else None
    told: set[str] = set()
    while not canceled():
        try:
            busy = builders_on_store(client, root, {plan.build_id})
        except Exception as exc:  # noqa: BLE001 - podman trouble: the build's own calls will say more
            warn(f"could not check for other builders on the store: {exc}")
            return
        if not busy:
            return
        dead = set()
        for container in busy:
            labels = _labels(container)
            owner = Owner.parse(labels.get(OWNER_LABEL, ""))
            if owner is not None and machine.gone(owner):
                dead.add(labels.get(BUILD_LABEL, ""))
        if dead:
            try:
                orphans = [o for o in find_orphans(client, machine) if o.build_id in dead]
                report = collect(client, orphans, held=held)
            except Exception as exc:  # noqa: BLE001 - podman trouble: wait (cancelable), never share the store
                orphans, report = [], Report(left=[f"what dead builds left on the store ({exc})"])
            for orphan in orphans:
                warn(f"removed {', '.join(orphan.things())}: left on this store by "
                     f"{orphan.describe()}")
            for line in report.left:
                if line not in told:
                    told.add(line)
                    warn(f"could not remove {line}")
            if not report.left:
                continue
        for container in busy:
            if _name(container) not in told:
                told.add(_name(container))
                recorded = _labels(container).get(OWNER_LABEL) or "not recorded"
                warn(f"waiting for builder {_name(container)} (owner {recorded}), which is "
                     f"using the store of project {plan.project}")
        time.sleep(poll)
