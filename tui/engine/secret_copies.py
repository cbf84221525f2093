"""Copies of Kubernetes Secrets that ``podman kube play`` leaves as volumes.

A Pod that mounts a Secret (``volumes: - secret: secretName: S``) makes podman 4.3 create a
named volume ``S`` and write the Secret's files into it, in the clear, under
``/var/lib/containers/storage/volumes/S/_data`` (measured: a ``--on kube`` build with registry
credentials left ``buildcage-BUILD-fetch`` holding ``auth.json``; 123 such volumes had piled up on
this machine in one day of tests). Removing the Secret leaves the volume, it carries no label,
and ``podman pod rm`` keeps it. So a kube build removes its copies itself once its Pods are gone
(``KubeRunner``), and gc removes the ones a killed build, or an older buildcage, left: an
unlabelled volume named like a phase's Secret that no container uses (podman refuses to remove a
volume in use, so a live Pod's copy is never taken) and whose build's record
(``tui.engine.secret_owners``) names a process that is gone; one with no record in this data
directory only once it is ``UNRECORDED_AGE`` old: kube play makes the volume a moment before the
container that uses it, and another data directory's build (another user, another
``XDG_DATA_HOME``) on the same service has no record here (seen: a concurrent collector took a
live build's copy in that moment, and its publish Pod found no auth.json).
"""

from __future__ import annotations

import re
from typing import Any

from podman.errors import NotFound

from tui.engine.containers import podman_time

COPY_NAME = re.compile(r"^buildcage-(?P<build>[0-9a-f]{12})-(?:fetch|build|publish)$")
"""``BuildPlan.kube_secret_name`` of a phase that runs as a Pod."""

UNRECORDED_AGE = 3600.0
"""Seconds before a copy no record here explains counts as left behind."""

IN_USE = "volume is being used"
"""podman's answer when a container still mounts the volume (a live Pod's copy)."""


def is_copy(volume: Any) -> str:
    """The build id when ``volume`` is a Secret's copy (its name, and no buildcage label: the
    store volumes buildcage makes itself are labelled); else ""."""
    attrs = getattr(volume, "attrs", {}) or {}
    if any(str(key).startswith("buildcage.") for key in attrs.get("Labels") or {}):
        return ""
    match = COPY_NAME.match(str(attrs.get("Name") or getattr(volume, "name", "")))
    return match.group("build") if match else ""


def created(volume: Any) -> float:
    """When podman made the volume (epoch seconds); 0 when it does not say (taken as old)."""
    return podman_time(str((getattr(volume, "attrs", {}) or {}).get("CreatedAt") or ""))


def list_copies(client: Any) -> dict[str, list[Any]]:
    """Build id -> that build's Secret copies on the podman service."""
    found: dict[str, list[Any]] = {}
    for volume in client.volumes.list(filters={"name": "buildcage-"}):
        build = is_copy(volume)
        if build:
            found.setdefault(build, []).append(volume)
    return found


def remove_copy(client: Any, name: str) -> str:
    """Removes the copy named ``name`` if there is one; "" or why it is left."""
    try:
        volume = client.volumes.get(name)
        if not is_copy(volume):
            return ""  # not podman's copy of our Secret (someone's own volume): never touched
        volume.remove()  # not forced: a container still using it keeps it
    except NotFound:
        return ""
    except Exception as exc:  # noqa: BLE001 - podman trouble or in use: say it is left
        return f"volume {name} ({exc})"
    return ""
