"""Environment checks, each with the fix a user can apply when it fails."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tui.engine.config import LOCAL_REGISTRY, Config, data_dir, ensure_data_dir
from tui.engine.containers import remove_container, wait_exit
from tui.engine.orphans import find_orphans, owner_label
from tui.engine.podman_api import PodmanUnavailable, connect, socket_path
from tui.engine.profiles import HOST_STORE
from tui.engine.registry import anonymous_write_probe, check_reachable

PROVISION = "provision/provision.sh"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _socket(config: Config) -> Check:
    path = socket_path(config.podman_url)
    try:
        client = connect(config.podman_url, config.podman_identity, config.podman_known_hosts)
        client.close()
    except PodmanUnavailable as exc:
        return Check("socket", False, str(exc).split(". Start")[0],
                     f"podman system service --time=0 unix://{path} &  (or {PROVISION})")
    return Check("socket", True, f"podman API answers at {config.podman_url}")


def _podman(config: Config) -> list[Check]:
    try:
        client = connect(config.podman_url, config.podman_identity, config.podman_known_hosts)
    except PodmanUnavailable:
        fix = "start the podman service first (see the socket check)"
        return [Check(n, False, "not checked: podman does not answer", fix)
                for n in ("podman version", "runtime", "builder image", "container start",
                          "storage", "orphans")]
    with client:
        info = client.info()
        host, store = info.get("host", {}), info.get("store", {})
        version = info.get("version", {}).get("Version", "?")
        major = int(version.split(".")[0]) if version[0].isdigit() else 0
        runtime = host.get("ociRuntime", {}).get("name", "?")
        driver = store.get("graphDriverName", "?")
        graph = store.get("graphRoot", "?")
        has_builder = client.images.exists(config.builder_image)
        starts = _container_starts(client, config.builder_image if has_builder else "")
        orphans = _orphans(client)
    return [
        Check("podman version", major >= 4, f"podman {version}",
              "install podman 4 or newer: apt-get install podman"),
        Check("runtime", runtime == "runc", f"OCI runtime {runtime}",
              f"set [engine] runtime = \"runc\" in containers.conf (crun refuses hybrid "
              f"cgroups here); {PROVISION} writes it"),
        Check("builder image", has_builder, config.builder_image,
              f"build it: {PROVISION} (offline from Debian packages when no registry answers)"),
        Check("container start", starts == "", starts or "the service starts a container",
              "restart the service from / : pkill -f 'podman system service'; "
              f"{PROVISION}"),
        Check("storage", driver == "overlay" and graph == HOST_STORE,
              f"host store {graph} ({driver})",
              f"buildcage's host profiles expect the rootful overlay store at {HOST_STORE}"),
        orphans,
    ]


def _orphans(client) -> Check:
    """Containers, pods and volumes whose buildcage process is gone (killed, hung up): a
    builder may still be running, holding a store."""
    try:
        orphans = find_orphans(client)
    except Exception as exc:  # noqa: BLE001 - the point of the check is to say what failed
        return Check("orphans", False, f"could not list buildcage's containers: {exc}",
                     "see the checks above")
    if not orphans:
        return Check("orphans", True, "nothing left by buildcage processes that are gone")
    things = [thing for orphan in orphans for thing in orphan.things()]
    shown = ", ".join(things[:4]) + (f" and {len(things) - 4} more" if len(things) > 4 else "")
    return Check("orphans", False,
                 f"{len(things)} left by {len(orphans)} buildcage process(es) that are gone: "
                 f"{shown}", "buildcage gc  (stops and removes them; --dry-run lists them)")


def _container_starts(client, image: str) -> str:
    """"" when the service really starts a container, else why not. A service that answers
    pings can still fail every start (seen here: started from a since-deleted directory)."""
    if not image:
        return "not checked: no builder image"
    container = None
    try:
        container = client.containers.create(
            image=image, command=["true"], network_mode="none",
            labels={"buildcage.doctor": "1", **owner_label()})
        container.start()
        code = wait_exit(container)
        return "" if code == 0 else f"a test container exited {code}"
    except Exception as exc:  # noqa: BLE001 - the point of the check is to say what failed
        return f"a test container failed: {exc}"
    finally:
        if container is not None:
            remove_container(container)


def _fuse() -> Check:
    try:
        mode = os.stat("/dev/fuse").st_mode
    except OSError:
        return Check("/dev/fuse", False, "missing", "modprobe fuse (the builder needs /dev/fuse)")
    if not stat.S_ISCHR(mode):
        return Check("/dev/fuse", False, "not a character device", "modprobe fuse")
    world = mode & 0o006 == 0o006
    return Check("/dev/fuse", world, f"mode {stat.S_IMODE(mode):o}",
                 "chmod 0666 /dev/fuse (user-namespaced builders open it as a mapped user)")


def _registry(config: Config) -> Check:
    ok, message = check_reachable(LOCAL_REGISTRY, config.tls_verify_for(LOCAL_REGISTRY))
    return Check("registry", ok, message, f"start the local registry: {PROVISION}")


def _registry_writes() -> Check:
    """The local registry must not take uploads from anybody: it serves the bases every build
    pulls, and a poisoned base poisons every later build."""
    answer = anonymous_write_probe(LOCAL_REGISTRY)
    if answer == "closed":
        return Check("registry writes", True, "uploads need credentials")
    if answer == "open":
        return Check("registry writes", False,
                     f"{LOCAL_REGISTRY} accepts uploads and deletes from anybody",
                     f"{PROVISION} (restarts it with htpasswd credentials)")
    return Check("registry writes", False, f"could not tell: {answer}",
                 f"start the local registry: {PROVISION}")


def _userns() -> Check:
    try:
        ok = all("containers:" in Path(f).read_text() for f in ("/etc/subuid", "/etc/subgid"))
    except OSError:
        ok = False
    return Check("user namespaces", ok, "subordinate ids for 'containers'" if ok else "no ranges",
                 "echo containers:200000:1000000 >> /etc/subuid /etc/subgid (isolated profile)")


def _data_dir() -> Check:
    path = data_dir()
    try:
        ensure_data_dir()  # 0700, tightened if it was more open
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return Check("data dir", False, f"{path}: {exc.strerror}", f"make {path} writable")
    return Check("data dir", mode == 0o700, f"{path} (mode {mode:o})", f"chmod 700 {path}")


def _kernel_overlay(config: Config) -> Check:
    """Whether Buildah can mount the kernel's overlay in a builder, with and without a user
    namespace of its own: read from a real builder (tui.engine.overlay). Probed again when the
    recorded answer is for another kernel or podman, or was no."""
    from tui.engine.overlay import ensure_probe, probe_path, read_record, service_key

    try:
        client = connect(config.podman_url, config.podman_identity, config.podman_known_hosts)
    except PodmanUnavailable:
        return Check("kernel overlay", False, "not checked: podman does not answer",
                     "start the podman service first (see the socket check)")
    data = ensure_data_dir()
    service = service_key(config.podman_url)
    old = read_record(data, service)
    again = old is not None and not all(a.ok for a in old.answers.values())
    with client:
        record = ensure_probe(client, config.builder_image, data, again=again,
                              service=service)
    if record is None:
        return Check("kernel overlay", False, "the probe builders could not run",
                     "see the builder image and container start checks; then buildcage doctor")
    names = {"userns": "user-namespaced builder", "host": "builder without a user namespace"}
    answers = "; ".join(f"{names.get(kind, kind)}: "
                        + (f"Buildah mounted {a.fstype}" if a.ok else a.detail)
                        for kind, a in sorted(record.answers.items(), reverse=True))
    ok = all(a.ok for a in record.answers.values())
    when = "probed now" if record != old else "recorded"
    detail = (f"{answers} ({when}: kernel {record.kernel}, podman {record.podman_version}, "
              f"{probe_path(data, service)})")
    return Check("kernel overlay", ok, detail,
                 "none needed: builds use fuse-overlayfs (slower) where the kernel's overlay "
                 "failed; a kernel of 5.11 or later mounts overlay in a user namespace")


def run_checks(config: Config) -> list[Check]:
    checks: list[Check] = [_socket(config)]
    checks += _podman(config)
    checks.append(_kernel_overlay(config))
    simple: list[Callable[[], Check]] = [_fuse, _userns, _data_dir]
    checks += [c() for c in simple]
    checks.append(_registry(config))
    checks.append(_registry_writes())
    return checks
