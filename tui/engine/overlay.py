"""Which overlay a builder mounts its image layers with: the kernel's, or fuse-overlayfs.

Measured on this host (kernel 6.18, podman 4.3.1, Buildah 1.28): a builder needs **no
capability** for the kernel's overlay. Buildah, without CAP_SYS_ADMIN, re-executes itself in a
user namespace of its own (nested in the builder's, or in the host's for a builder without one)
and mounts there, which Linux allows for overlayfs since 5.11. The RUN steps run in that nested
namespace too, chrooted: they can neither mount nor create a user namespace (both refused with
EPERM, with either overlay). So the choice changes which code serves the files (the kernel's
overlayfs, or FUSE plus fuse-overlayfs in user space), not what a RUN step may do; and the
kernel's is faster (see bench/results.md).

Whether the kernel allows it is a property of the host: ``buildcage doctor`` (and the first
build after the kernel or podman changed) runs a real builder of each kind, user-namespaced and
not, has Buildah mount a working container and reads the file system type of ``/`` from
``/proc/self/mounts`` inside it. The answer is recorded in the data directory
(``overlay-probe.json``) with the kernel release and the podman binary it holds for; the planner
picks the kernel's overlay for a profile with ``overlay = "auto"`` only when that record is
current and says yes, else fuse-overlayfs. A podman service on another host gets a record of
its own (``overlay-probe-DIGEST.json``), checked against the kernel and version that service
reports.

A persistent store keeps the overlay it was made with: containers/storage records it in
``overlay/.has-mount-program`` and, when that says "true", goes on mounting with
fuse-overlayfs whatever storage.conf says (measured). The planner reads the record so that the
storage.conf it writes says what will happen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tui.engine.paths import check_own_path

if TYPE_CHECKING:
    from podman import PodmanClient

OverlayKind = Literal["kernel", "fuse"]
NamespaceKind = Literal["userns", "host"]
"""Builders with a user namespace of their own (``userns = "auto"``), and without."""

PROBE_FILE = "overlay-probe.json"
RECORD = "overlay/.has-mount-program"
"""containers/storage's record, under the graph root, of whether a store uses a mount program."""
KERNEL_FSTYPE = "overlay"

# Buildah mounts a working container and runs `cat /proc/self/mounts` in it, as a RUN step
# would run: the type of "/" is the overlay that really served it. `cat` and the libraries
# `ldd` names are copied from the builder image (a scratch container has no program at all).
PROBE_SCRIPT = (
    'c=$(buildah from scratch); '
    'for f in /bin/cat $(ldd /bin/cat | grep -o "/[^ ]*"); do '
    'buildah copy -q "$c" "$f" "$f" >/dev/null; done; '
    'buildah run "$c" -- /bin/cat /proc/self/mounts | '
    'while read -r dev mnt fstype rest; do [ "$mnt" = / ] && echo "fstype=$fstype"; done; '
    'buildah rm "$c" >/dev/null'
)

PROBE_STORAGE_CONF = """# Written by buildcage for the kernel overlay probe (tui/engine/overlay.py)
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
[storage.options.overlay]
mountopt = "nodev"
"""
# The probe's storage.conf is written inside the container (no file of this machine is
# mounted), so the same probe runs on a podman service on another host.
PROBE_COMMAND = (f"cat > /etc/containers/storage.conf <<'EOF'\n{PROBE_STORAGE_CONF}EOF\n"
                 + PROBE_SCRIPT)
LOCAL = "local"
"""The service key of a podman service on this machine (a unix socket)."""


@dataclass(frozen=True)
class Answer:
    """What one probe builder saw."""

    ok: bool
    fstype: str = ""
    """The file system type of the working container's ``/`` ("overlay" is the kernel's)."""
    detail: str = ""


@dataclass(frozen=True)
class ProbeRecord:
    """The recorded answer, and the host it holds for."""

    kernel: str
    podman_binary: str
    """The podman executable's path, size and modification time: changes when podman does
    ("" for a service on another host, which is known by its kernel and version only)."""
    podman_version: str = ""
    service: str = LOCAL
    """``local``, or the URL of the podman service on another host it was probed on."""
    probed_at: float = 0.0
    answers: dict[str, Answer] = field(default_factory=dict)
    """``userns`` and ``host``: the two kinds of builder."""

    def allows(self, kind: NamespaceKind) -> bool:
        answer = self.answers.get(kind)
        return answer is not None and answer.ok

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ProbeRecord | None:
        try:
            data = json.loads(text)
            answers = {str(k): Answer(ok=bool(v["ok"]), fstype=str(v.get("fstype", "")),
                                      detail=str(v.get("detail", "")))
                       for k, v in dict(data.get("answers") or {}).items()}
            return cls(kernel=str(data["kernel"]), podman_binary=str(data["podman_binary"]),
                       podman_version=str(data.get("podman_version", "")),
                       service=str(data.get("service", LOCAL)),
                       probed_at=float(data.get("probed_at", 0.0)), answers=answers)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def kernel_release() -> str:
    return os.uname().release


def podman_binary() -> str:
    """``PATH SIZE MTIME_NS`` of the podman executable (resolved), or "" when there is none."""
    found = shutil.which("podman")
    if not found:
        return ""
    path = os.path.realpath(found)
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f"{path} {info.st_size} {info.st_mtime_ns}"


def service_key(url: str) -> str:
    """``local`` for a podman service on this machine, else its URL."""
    return LOCAL if url.startswith(("unix://", "http+unix://")) else url


def probe_path(data_dir: Path, service: str = LOCAL) -> Path:
    if service == LOCAL:
        return data_dir / PROBE_FILE
    digest = hashlib.sha256(service.encode()).hexdigest()[:12]
    return data_dir / f"overlay-probe-{digest}.json"


def read_record(data_dir: Path, service: str = LOCAL) -> ProbeRecord | None:
    """The recorded probe of ``service``, whatever kernel it holds for (None: none, or
    unreadable)."""
    try:
        record = ProbeRecord.from_json(probe_path(data_dir, service).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return record if record is not None and record.service == service else None


def is_current(record: ProbeRecord | None) -> bool:
    """Whether ``record`` was made on this kernel with this podman (a local service's)."""
    return (record is not None and record.service == LOCAL
            and record.kernel == kernel_release() and record.podman_binary == podman_binary())


def current_record(data_dir: Path, service: str = LOCAL) -> ProbeRecord | None:
    """The recorded probe if it holds for this kernel and podman, else None. For a service on
    another host, the record as it is: only that service can say whether its kernel or podman
    changed, which ``ensure_probe`` asks (``Engine.probed`` before every build)."""
    record = read_record(data_dir, service)
    if service != LOCAL:
        return record
    return record if is_current(record) else None


def write_record(data_dir: Path, record: ProbeRecord) -> None:
    from tui.engine.config import private_dir

    private_dir(data_dir)  # 0700, as everywhere buildcage keeps its data
    path = probe_path(data_dir, record.service)
    check_own_path(path, data_dir)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    check_own_path(temporary, data_dir)
    temporary.write_text(record.to_json(), encoding="utf-8")
    temporary.replace(path)


# -- the choice ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    kind: OverlayKind
    reason: str


def namespace_kind(userns: str) -> NamespaceKind:
    return "host" if userns == "host" else "userns"


def store_record(graph_root: Path | None) -> str:
    """"true", "false" (containers/storage's record in an existing store), or "". The store is
    the builds': read without following a link or waiting on a FIFO (tui.engine.store_files)."""
    from tui.engine.store_files import StoreFileError, read_file

    if graph_root is None:
        return ""
    try:
        return read_file(str(graph_root), RECORD, 16).decode("utf-8").strip()
    except (StoreFileError, UnicodeDecodeError):
        return ""


def choose(wanted: str, userns: str, record: ProbeRecord | None,
           store: str = "") -> Choice:
    """The overlay for a profile asking for ``wanted`` ("auto", "kernel", "fuse"), in a builder
    with ``userns``, given the probe ``record`` (current, or None) and an existing store's own
    record ``store`` (see ``store_record``; "unknown": a persistent store it cannot read)."""
    if wanted == "fuse":
        return Choice("fuse", "the profile asks for fuse-overlayfs")
    if store == "true":
        return Choice("fuse", "this store was made with fuse-overlayfs and containers/storage "
                              "keeps mounting it so; remove the store for the kernel's overlay")
    if store == "unknown" and wanted == "auto":
        # A store made with fuse-overlayfs would need it (and /dev/fuse) whatever storage.conf
        # says: without its record, the overlay that always works.
        return Choice("fuse", "the store is a volume on the podman host, whose record of its "
                              "overlay cannot be read from here")
    if wanted == "kernel":
        return Choice("kernel", "the profile asks for the kernel's overlay")
    kind = namespace_kind(userns)
    if record is None or kind not in record.answers:
        return Choice("fuse", "the kernel's overlay is not probed on this kernel and podman "
                              "yet (buildcage doctor or the next build probes it)")
    if record.allows(kind):
        return Choice("kernel", f"probed on kernel {record.kernel}, Buildah mounted it in a "
                                f"{_builder_words(kind)}")
    why = record.answers[kind].detail or "no detail"
    return Choice("fuse", f"the kernel's overlay failed its probe on kernel {record.kernel} "
                          f"({why})")


def _builder_words(kind: NamespaceKind) -> str:
    return "user-namespaced builder" if kind == "userns" else "builder without a user namespace"


# -- the probe ----------------------------------------------------------------------------------
PROBE_LABEL = "buildcage.overlay-probe"


def ensure_probe(client: PodmanClient, builder_image: str, data_dir: Path,
                 kinds: tuple[NamespaceKind, ...] = ("userns", "host"), *,
                 again: bool = False, service: str = LOCAL) -> ProbeRecord | None:
    """The record of ``service``, current for its kernel and podman, with an answer for each
    of ``kinds``: the kinds it lacks are probed (one builder each, about 3 s) and recorded.
    ``again`` probes ``kinds`` whatever the record says. A probe that could not run at all (no
    builder image, podman trouble) is not recorded: it says nothing about the kernel. None
    when nothing is recorded for this kernel and podman."""
    from tui.engine.orphans import OWNER_LABEL, current_owner

    if service == LOCAL:
        kernel, binary = kernel_release(), podman_binary()
        record = current_record(data_dir)
    else:  # only the service knows its kernel and podman
        kernel, binary = _service_kernel(client), ""
        record = read_record(data_dir, service)
    version = _service_version(client)
    if record is not None and (record.kernel != kernel or record.podman_binary != binary
                               or (version and record.podman_version != version)):
        record = None
    answers = dict(record.answers) if record is not None else {}
    missing = [k for k in kinds if again or k not in answers]
    if not missing:
        return record
    labels = {OWNER_LABEL: str(current_owner()), PROBE_LABEL: "1"}
    probed = False
    for kind in missing:
        answer = probe_one(client, builder_image, kind, labels)
        if answer is not None:
            answers[kind], probed = answer, True
    if not probed:
        return record
    record = ProbeRecord(kernel=kernel, podman_binary=binary, podman_version=version,
                         probed_at=round(time.time(), 3), answers=answers, service=service)
    write_record(data_dir, record)
    return record


def _service_version(client: PodmanClient) -> str:
    try:
        return str(client.version().get("Version", ""))
    except Exception:  # noqa: BLE001 - not known: the binary (local) or kernel still says
        return ""


def _service_kernel(client: PodmanClient) -> str:
    try:
        return str(client.info().get("host", {}).get("kernel", ""))
    except Exception:  # noqa: BLE001 - not known: then no record holds for it
        return ""


def probe_kwargs(builder_image: str, kind: NamespaceKind, volume: str,
                 labels: dict[str, str]) -> dict[str, Any]:
    """A builder as a build makes one (no network, bounded, /dev/fuse, a fresh volume as its
    store), with the probe's storage.conf: the kernel's overlay, no mount program."""
    from tui.engine.renderings import _userns

    kwargs: dict[str, Any] = {
        "image": builder_image,
        "command": ["sh", "-c", PROBE_COMMAND],
        "name": volume,
        "labels": labels,
        "environment": {"BUILDAH_ISOLATION": "chroot"},
        "volumes": {volume: {"bind": "/var/lib/containers", "mode": "rw",
                             "extended_mode": ["dev", "suid"]}},
        "devices": ["/dev/fuse:/dev/fuse:rwm"],
        "network_mode": "none",
        "pids_limit": 4096,
        "ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024},
                    {"Name": "nproc", "Soft": 4096, "Hard": 4096}],
    }
    if kind == "userns":
        kwargs.update(_userns("auto:size=65536"))
    return kwargs


def probe_one(client: PodmanClient, builder_image: str, kind: NamespaceKind,
              labels: dict[str, str]) -> Answer | None:
    """What one probe builder saw; None when it could not run (that is no answer)."""
    from tui.engine.containers import remove_container, wait_exit

    name = f"buildcage-overlay-probe-{uuid.uuid4().hex[:12]}"
    container = None
    try:
        client.volumes.create(name, labels=labels)
        container = client.containers.create(**probe_kwargs(builder_image, kind, name, labels))
        container.start()
        code = wait_exit(container)
        output = b"".join(_chunks(container.logs(stdout=True, stderr=True))).decode(
            "utf-8", "replace")
    except Exception:  # noqa: BLE001 - no image, podman trouble: no answer about the kernel
        return None
    finally:
        if container is not None:
            remove_container(container)
        try:
            client.volumes.get(name).remove(force=True)
        except Exception:  # noqa: BLE001, S110 - never made, or gone: nothing to remove
            pass
    return answer_from(int(code), output)


def _chunks(logs: Any) -> list[bytes]:
    if isinstance(logs, (bytes, str)):
        logs = [logs]
    return [c.encode() if isinstance(c, str) else bytes(c) for c in logs]


def answer_from(code: int, output: str) -> Answer:
    """The probe's answer from its exit code and output (``fstype=TYPE`` for ``/``)."""
    types = [line.split("=", 1)[1].strip() for line in output.splitlines()
             if line.startswith("fstype=")]
    fstype = types[-1] if types else ""
    if fstype == KERNEL_FSTYPE:
        return Answer(True, fstype, "Buildah mounted the kernel's overlay")
    if fstype:
        return Answer(False, fstype, f"Buildah mounted {fstype}, not the kernel's overlay")
    last = " ".join(output.split())[-200:]
    return Answer(False, "", f"the probe exited {code}: {last or 'no output'}")
