"""A session builder's containers, derived from the build's own BuildPlan.

A session builder keeps, for one profile and project, the containers of a build's three phases
(fetch, build, publish) between builds. It never execs into a running container: each phase of
each build *starts* its kept container, whose one fixed command runs the phase's command that
buildcage wrote for this build, and the container stops when that command ends, as a one-shot
phase container does. So every build gets a fresh PID 1, PID namespace, /dev, IPC, tmpfs and
host-ro overlay upper layers (measured on podman 4.3: a file written to /dev, a ``setsid``
process and a write into an ``:O`` volume were all gone at the next start), and no process a
RUN step started outlives its phase: the build container has stopped before the trusted
publish phase starts. Bind mounts are made again, by path, at every start: a Containerfile
replaced by a new file (``git checkout``) is the new one at the next build.

What differs from the one-shot containers (``renderings.create_kwargs`` of ``session_plan``):

- the command: ``RUN_INBOX`` runs the phase command the build wrote into its inbox;
- secrets: a running container's podman secrets are fixed at create, so each phase's
  secrets, build arguments and registry credentials are files in an *inbox*, a private
  directory on the host's ``/dev/shm`` (memory), bind-mounted read-only at ``/run/secrets``
  where the podman secrets would be; the phase commands read them there unchanged, and the
  inbox is emptied when the build ends;
- a read-only root filesystem with fresh tmpfs on ``/run``, ``/tmp`` and ``/var/tmp``: a
  RUN step cannot change the builder for the next build (podman's ``/etc/hosts`` and the other
  files it mounts are read-only then too, measured).

Only builds whose store persists anyway are served (``refusal``): a profile with a store of
kind ``project`` in the host's user namespace (``host-ro``, ``project``). The rest run one-shot.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import uuid
from pathlib import Path
from typing import Any

from tui.engine.plan import SECRETS_DIR, BuildPlan, PhaseName
from tui.engine.registry import OciTarget
from tui.engine.renderings import create_kwargs

SESSION_LABEL = "buildcage.session"
"""Every container of a session builder carries its session id (and no owner label: a session
outlives the process that made it; ``tui.engine.session_builder.sweep`` collects them)."""
PHASES: tuple[PhaseName, ...] = ("fetch", "build", "publish")
COMMAND_FILE = ".buildcage-command"
"""The phase command a build writes into a phase's inbox (shell words, ``exec`` first)."""
RUN_INBOX = ("sh", "-c", f"exec sh {SECRETS_DIR}/{COMMAND_FILE}")
"""The session containers' one command: the shell ``exec``s the phase's command, which so
becomes PID 1 as in a one-shot phase container (``stop_gracefully`` signals PID 1's Buildah)."""
TMPFS = ("/run", "/tmp", "/var/tmp")
"""The writable places of the read-only root filesystem, fresh at every start."""


LOG_SIZE_MAX = 256 * 1024 * 1024
"""A kept container's k8s-file log is emptied by conmon when it would grow past this (podman
4.3's ``log_size_max``; measured: a 1 MiB limit and 13 MB of output left a 0.65 MB file, the
same file, truncated in place), and by the build before each start
(``SessionRunner._create``): a build printing gigabytes cannot fill the disk, in one build or
across many. A million-line build log (~100 MB with its timestamps) stays whole."""


def new_session_id() -> str:
    """12 characters like a build id, starting with ``s`` (so no build id is one)."""
    return "s" + uuid.uuid4().hex[:11]


def refusal(plan: BuildPlan) -> str:
    """Why a session builder does not serve this build ("" when it does)."""
    if plan.remote:
        return "a session builder needs the podman service on this machine"
    if plan.profile.store != "project":
        return (f"profile {plan.profile.name} has a {plan.profile.store} store; sessions serve "
                "profiles whose store is kept per project")
    if plan.profile.userns != "host":
        return f"profile {plan.profile.name} runs in a user namespace of its own"
    if isinstance(plan.push_target(), OciTarget):
        return "an oci: push target is mounted into the publish container when it is made"
    return ""


def session_plan(plan: BuildPlan, session_id: str, folder: Path) -> BuildPlan:
    """The plan the session's containers are made from: the build's, under the session's id,
    without what each build brings (secrets, build arguments, credentials, push target,
    stage), no owner, and its context snapshot (when it reads one) in the session's
    ``folder``, refilled for every build."""
    return dataclasses.replace(
        plan, build_id=session_id, build_args=(), secrets=(), authfile=None, push="",
        target_stage="", no_cache=False, owner="",
        context_snapshot=folder / "snapshot" if plan.context_snapshot is not None else None)


def container_kwargs(splan: BuildPlan, phase: PhaseName, inbox: Path) -> dict[str, Any]:
    """``containers.create`` arguments of one session container: the phase's own
    (``create_kwargs``: network, mounts, limits, labels, security options), with the inbox's
    command, a read-only root, fresh tmpfs and the inbox at ``/run/secrets``."""
    kwargs = create_kwargs(splan, phase)
    assert "secrets" not in kwargs, "a session plan carries no podman secret"
    kwargs["command"] = list(RUN_INBOX)
    kwargs["labels"] = {**kwargs["labels"], SESSION_LABEL: splan.build_id}
    kwargs["read_only"] = True
    kwargs["log_config"] = {"Type": "k8s-file", "Config": {"size": LOG_SIZE_MAX}}
    kwargs["mounts"] = [
        *kwargs["mounts"],
        *({"type": "tmpfs", "target": path, "tmpfs_options": {}} for path in TMPFS),
        {"type": "bind", "source": str(inbox / phase), "target": SECRETS_DIR,
         "read_only": True},
    ]
    return kwargs


def all_kwargs(splan: BuildPlan, inbox: Path) -> dict[str, dict[str, Any]]:
    """Every session container's arguments, as JSON data: also the session's key. A build whose
    own session plan renders anything else (another mount, limit, overlay, network...) does not
    use that session: the containers are always what this build's plan renders."""
    data = {phase: container_kwargs(splan, phase, inbox) for phase in PHASES}
    loaded: dict[str, dict[str, Any]] = json.loads(json.dumps(data))
    return loaded


def drift(plan: BuildPlan, splan: BuildPlan) -> str:
    """"" when the build's phases see what the session's containers mount, secrets aside
    (which arrive through the inbox at the same place); else what differs."""
    for phase in PHASES:
        own = sorted(m.target for m in plan.phase_mounts(phase) if m.kind != "secret")
        kept = sorted(m.target for m in splan.phase_mounts(phase))
        if own != kept:
            return f"the {phase} phase mounts {own}, the session's {kept}"
    return ""


def command_text(argv: tuple[str, ...] | list[str]) -> str:
    """The inbox's command file for a phase command: one ``exec`` of its words, quoted."""
    return "exec " + shlex.join(argv) + "\n"
