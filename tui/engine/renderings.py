"""The three renderings of a BuildPlan: podman-py create arguments, a pasteable ``podman run``
line, and a Kubernetes Pod manifest. Each reads only the plan's mounts, command, environment and
options, so a change to a profile shows in all three at once."""

from __future__ import annotations

import json
import shlex
from typing import Any

from tui.engine.plan import BuildPlan, Mount


def _userns(mode: str) -> dict[str, Any]:
    """podman-py arguments for a user namespace mode like ``auto:size=65536``.

    podman 4.3's API ignores ``userns={"nsmode": "auto"}`` alone (the container runs in the host
    namespace); the automatic range must be asked for through ``idmappings``.
    """
    nsmode, _, options = mode.partition(":")
    if nsmode != "auto":
        return {"userns_mode": nsmode}
    opts: dict[str, Any] = {}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            opts["Size"] = int(value)
    return {"userns_mode": "auto", "idmappings": {"AutoUserNs": True, "AutoUserNsOpts": opts}}


def create_kwargs(plan: BuildPlan) -> dict[str, Any]:
    """Keyword arguments for ``PodmanClient.containers.create``."""
    binds = [m for m in plan.mounts() if m.kind == "bind"]
    volumes = [m for m in plan.mounts() if m.kind == "volume"]
    devices = [m for m in plan.mounts() if m.kind == "device"]
    kwargs: dict[str, Any] = {
        "image": plan.builder_image,
        "command": plan.command(),
        "name": plan.container_name,
        "labels": plan.labels(),
        "environment": plan.environment(),
        "mounts": [
            {"type": "bind", "source": m.source, "target": m.target, "read_only": m.read_only,
             **({"chown": True} if m.chown else {})}  # podman-py sends chown as U
            for m in binds
        ],
        "volumes": {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                    for m in volumes},
        "devices": [f"{m.source}:{m.target}:rwm" for m in devices],
        # Host network only to reach the loopback registry; never a bridge.
        "network_mode": "host",
        "pids_limit": plan.limits.pids,
        "ulimits": [
            {"Name": "nofile", "Soft": plan.limits.nofile, "Hard": plan.limits.nofile},
            {"Name": "nproc", "Soft": plan.limits.nproc, "Hard": plan.limits.nproc},
        ],
    }
    if plan.profile.userns != "host":
        kwargs.update(_userns(plan.profile.userns))
    if plan.security_options():
        kwargs["security_opt"] = plan.security_options()
    if plan.profile.cap_add:
        kwargs["cap_add"] = list(plan.profile.cap_add)
    if plan.profile.cap_drop:
        kwargs["cap_drop"] = list(plan.profile.cap_drop)
    return kwargs


def _volume_flag(m: Mount) -> str:
    if m.kind == "device":
        return f"--device={m.source}:{m.target}:rwm"
    mode = ("ro" if m.read_only else "rw") + (",U" if m.chown else "")
    return f"--volume={m.source}:{m.target}:{mode}"


def podman_run_argv(plan: BuildPlan) -> list[str]:
    argv = ["podman", "run", "--rm", f"--name={plan.container_name}", "--network=host",
            f"--pids-limit={plan.limits.pids}",
            f"--ulimit=nofile={plan.limits.nofile}:{plan.limits.nofile}",
            f"--ulimit=nproc={plan.limits.nproc}:{plan.limits.nproc}"]
    argv += [f"--label={k}={v}" for k, v in plan.labels().items()]
    if plan.profile.userns != "host":
        argv.append(f"--userns={plan.profile.userns}")
    argv += [f"--security-opt={o}" for o in plan.security_options()]
    argv += [f"--cap-add={c}" for c in plan.profile.cap_add]
    argv += [f"--cap-drop={c}" for c in plan.profile.cap_drop]
    argv += [f"--env={k}={v}" for k, v in plan.environment().items()]
    argv += [_volume_flag(m) for m in plan.mounts()]
    return argv + [plan.builder_image] + plan.command()


def podman_run(plan: BuildPlan) -> str:
    """A shell command that runs the same build; one option a line for reading."""
    argv = podman_run_argv(plan)
    head_end = argv.index(plan.builder_image)
    lines = [shlex.join(argv[:2])] + [shlex.quote(a) for a in argv[2:head_end]]
    lines.append(shlex.join(argv[head_end:]))
    text = " \\\n  ".join(lines)
    if plan.profile.store == "fresh":
        # The fresh store is a named volume; the pasted command removes it too, like the runner.
        text += f"\npodman volume rm --force {shlex.quote(plan.store_volume)}"
    return text


def kube_pod(plan: BuildPlan) -> dict[str, Any]:
    """A Pod running the same builder (playable with ``podman kube play``)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, m in enumerate(plan.mounts()):
        name = f"v{i}-" + "".join(c if c.isalnum() else "-" for c in m.purpose.lower())[:40]
        name = name.rstrip("-")
        if m.kind == "volume":
            volumes.append({"name": name, "emptyDir": {}})
        else:
            kind = "CharDevice" if m.kind == "device" else ("Directory" if not m.file and not
                m.source.endswith((".conf", ".json")) else "File")
            volumes.append({"name": name, "hostPath": {"path": m.source, "type": kind}})
        mounts.append({"name": name, "mountPath": m.target, "readOnly": m.read_only})
    security: dict[str, Any] = {"privileged": False, "allowPrivilegeEscalation": False}
    caps: dict[str, list[str]] = {}
    if plan.profile.cap_add:
        caps["add"] = list(plan.profile.cap_add)
    if plan.profile.cap_drop:
        caps["drop"] = list(plan.profile.cap_drop)
    if caps:
        security["capabilities"] = caps
    for opt in plan.security_options():
        if opt == "label=disable":
            security["seLinuxOptions"] = {"type": "spc_t"}
        elif opt.startswith("label=level:"):
            security["seLinuxOptions"] = {"level": opt.removeprefix("label=level:")}
    annotations = {f"buildcage/{k.split('.', 1)[1]}": v for k, v in plan.labels().items()}
    spec_extra: dict[str, Any] = {}
    if plan.profile.userns != "host":
        # Kubernetes' own switch for a user namespace. podman 4.3's kube play fails such a pod
        # with host networking (sysfs); better a loud failure than a silently weaker builder.
        spec_extra["hostUsers"] = False
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": plan.container_name, "labels": {"app": "buildcage"},
                     "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "hostNetwork": True,
            **spec_extra,
            "containers": [{
                "name": "builder",
                "image": plan.builder_image,
                "command": plan.command(),
                "env": [{"name": k, "value": v} for k, v in plan.environment().items()],
                "securityContext": security,
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }


def to_yaml(value: Any, indent: int = 0) -> str:
    """Minimal YAML for plain data: strings are JSON-quoted, which YAML reads as-is."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                out.append(f"{pad}{key}: {to_yaml(item, 0)}")
        return "\n".join(out)
    if isinstance(value, list):
        if not value:
            return "[]"
        out = []
        for item in value:
            body = to_yaml(item, indent + 1)
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}- {body.lstrip()}")
            else:
                out.append(f"{pad}- {body}")
        return "\n".join(out)
    return json.dumps(value)


def kube_manifest(plan: BuildPlan) -> str:
    return "# buildcage build plan as a Kubernetes Pod (podman kube play works too)\n" + to_yaml(
        kube_pod(plan)) + "\n"
