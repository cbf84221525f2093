"""Who made a build's podman secrets: a small private record per build, written before them.

podman 4.3 keeps no labels on secrets, and a build's secrets (build arguments, ``--secret``
files, the registry auth file) exist before its first container: a buildcage process killed in
between leaves secrets that no labelled container, pod or volume points to. So ``stores.prepare``
writes ``DATA/secret-owners/BUILD_ID.json`` first (the owner, ``HOST:PID:START:BOOT`` as in the
owner labels, and the names the build may give its secrets; never a value), and
``stores.release`` removes it once every secret is gone. ``tui.engine.orphans`` reads the
records: a record whose owner is gone names secrets to collect.

A record names the podman service its secrets were made on (``service_id``): a ``gc`` against
another service (a remote one, rootless podman) leaves it alone.

The records are in the user's data directory: a ``buildcage gc`` run with another data
directory (another user, another ``XDG_DATA_HOME``) does not see them, as it does not see that
directory's stores either.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tui.engine.config import private_dir
from tui.engine.paths import check_own_path
from tui.engine.plan import BuildPlan

RECORDS = "secret-owners"
"""The records' directory, in buildcage's data directory (0700)."""
_BUILD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LOCAL = "local"
"""The service of records written by builds on this machine's podman (and by older versions)."""
_MAX_RECORD = 64 * 1024
"""A record is a few hundred bytes; anything larger is not one of ours."""


@dataclass(frozen=True)
class SecretRecord:
    """One build's record: its owner (as written, parsed by the caller) and secret names."""

    path: Path
    build_id: str
    owner: str
    names: tuple[str, ...]
    service: str = LOCAL
    """The podman service the secrets were made on (``service_of``)."""


def service_of(client: object) -> str:
    """Which podman service a client talks to: ``LOCAL`` for this machine's (free to tell),
    else the remote host's name and store root (one ``info`` call, about a second)."""
    from tui.engine.podman_api import is_remote

    return service_id(client) if is_remote(client) else LOCAL


def service_id(client: object) -> str:
    """A podman service's host name and store root (rootful and rootless differ); "" when
    podman cannot say."""
    try:
        info = client.info()  # type: ignore[attr-defined]  # any podman-py-like client
        return f"{info['host']['hostname']}:{info['store']['graphRoot']}"
    except Exception:  # noqa: BLE001 - unknown service: records match any service
        return ""


def secret_names(plan: BuildPlan) -> list[str]:
    """Every name a build's secrets may have, local or Kubernetes (a superset: only those that
    exist are ever removed, and each is this build's own name)."""
    names = [plan.secret_name("auth"), plan.secret_name("args")]
    names += [plan.secret_name(f"s-{name}") for name, _src in plan.secrets]
    names += [plan.kube_secret_name(phase) for phase in ("fetch", "build", "publish")]
    return names


def write_record(plan: BuildPlan, service: str = LOCAL) -> Path | None:
    """Writes the plan's record before any of its secrets exists; None (nothing written) for a
    plan without an owner (never collected, as nothing else of it is) or without secrets."""
    if not plan.owner or not (plan.authfile or plan.build_args or plan.secrets):
        return None
    folder = private_dir(plan.data_dir / RECORDS)
    path = folder / f"{plan.build_id}.json"
    check_own_path(path, plan.data_dir)  # never written through a planted link
    text = json.dumps({"build": plan.build_id, "owner": plan.owner, "service": service,
                       "secrets": secret_names(plan)})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def forget(path: Path) -> None:
    """The record of a build whose secrets are all gone."""
    path.unlink(missing_ok=True)


def read_records(data: Path) -> Iterator[SecretRecord]:
    """The records in data directory ``data``; anything that is not plainly one is skipped
    (never a reason to remove a secret): a name that is not the build's, a link, a big file."""
    folder = data / RECORDS
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for path in entries:
        build_id = path.name.removesuffix(".json")
        if path.suffix != ".json" or not _BUILD_ID.fullmatch(build_id):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                raw = handle.read(_MAX_RECORD + 1)
            record = json.loads(raw) if len(raw) <= _MAX_RECORD else None
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("build") != build_id:
            continue
        owner, names = record.get("owner"), record.get("secrets")
        if not isinstance(owner, str) or not isinstance(names, list):
            continue
        prefix = f"buildcage-{build_id}-"
        service = record.get("service")
        yield SecretRecord(path, build_id, owner,
                           tuple(n for n in names if isinstance(n, str) and n.startswith(prefix)),
                           service if isinstance(service, str) and service else LOCAL)
