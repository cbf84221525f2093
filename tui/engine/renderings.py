"""The three renderings of a BuildPlan: podman-py create arguments, a pasteable ``podman run``
line, and a Kubernetes Pod manifest. Each reads only the plan's mounts, command, environment and
options, so a change to a profile shows in all three at once."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from tui.engine.errors import UserError
from tui.engine.plan import SECRETS_DIR, BuildPlan, Mount, Phase, PhaseName


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


def holder_kwargs(plan: BuildPlan, name: str) -> dict[str, Any]:
    """A container that is created and never started, only to hold the profile's automatic
    user namespace range: podman hands that range to no other container while it exists, and
    the containers that take its mapping (``idmap``) share the store's owner."""
    return {"image": plan.builder_image, "command": ["true"], "name": name,
            "labels": {**plan.labels(), "buildcage.phase": "userns"}, "network_mode": "none",
            **_userns(plan.profile.userns)}


def _phase(plan: BuildPlan, phase: Phase | PhaseName | None) -> Phase:
    if isinstance(phase, Phase):
        return phase
    return plan.phase(phase or "build")


def create_kwargs(plan: BuildPlan, phase: Phase | PhaseName | None = None,
                  idmap: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``PodmanClient.containers.create`` for one phase (default: build).

    ``idmap`` (inspect's ``UidMap``/``GidMap`` of an earlier phase's container) gives a later
    phase the same user namespace mapping, so every phase owns the build's store alike.
    """
    spec = _phase(plan, phase)
    binds = [m for m in spec.mounts if m.kind == "bind"]
    volumes = [m for m in spec.mounts if m.kind == "volume"]
    devices = [m for m in spec.mounts if m.kind == "device"]
    secrets = [m for m in spec.mounts if m.kind == "secret"]
    overlays = [m for m in spec.mounts if m.kind == "overlay"]
    kwargs: dict[str, Any] = {
        "image": plan.builder_image,
        "command": list(spec.command),
        "name": spec.container_name,
        "labels": {**plan.labels(), "buildcage.phase": spec.name},
        "environment": plan.environment(),
        "mounts": [
            {"type": "bind", "source": m.source, "target": m.target, "read_only": m.read_only,
             **({"chown": True} if m.chown else {})}  # podman-py sends chown as U
            for m in binds
        ],
        "volumes": {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw",
                               "extended_mode": list(m.options)}
                    for m in volumes},
        "devices": [f"{m.source}:{m.target}:rwm" for m in devices],
        "network_mode": spec.network,
        "pids_limit": plan.limits.pids,
        "ulimits": [
            {"Name": "nofile", "Soft": plan.limits.nofile, "Hard": plan.limits.nofile},
            {"Name": "nproc", "Soft": plan.limits.nproc, "Hard": plan.limits.nproc},
        ],
    }
    if overlays:  # podman-py passes these on as they are
        kwargs["overlay_volumes"] = [{"destination": m.target, "source": m.source, "options": []}
                                     for m in overlays]
    if secrets:
        kwargs["secrets"] = [{"source": m.source, "target": m.target.rsplit("/", 1)[-1]}
                             for m in secrets]
    if plan.profile.userns != "host":
        kwargs.update(_fixed_userns(idmap) if idmap else _userns(plan.profile.userns))
    if plan.security_options():
        kwargs["security_opt"] = plan.security_options()
    if plan.profile.cap_add:
        kwargs["cap_add"] = list(plan.profile.cap_add)
    if plan.profile.cap_drop:
        kwargs["cap_drop"] = list(plan.profile.cap_drop)
    return kwargs


def _fixed_userns(idmap: dict[str, list[str]]) -> dict[str, Any]:
    """The same mapping again. podman 4.3 honours explicit maps only with ``private`` mode and
    snake-case keys (other spellings are silently ignored: the container runs as host root)."""
    def entries(maps: list[str]) -> list[dict[str, int]]:
        out = []
        for text in maps:
            inner, host, size = (int(x) for x in text.split(":"))
            out.append({"container_id": inner, "host_id": host, "size": size})
        return out

    return {"userns_mode": "private",
            "idmappings": {"UIDMap": entries(idmap["UidMap"]),
                           "GIDMap": entries(idmap["GidMap"])}}


def _volume_flag(m: Mount) -> str:
    if m.kind == "device":
        return f"--device={m.source}:{m.target}:rwm"
    if m.kind == "secret":
        return f"--secret={m.source},target={m.target.rsplit('/', 1)[-1]}"
    if m.kind == "overlay":
        return f"--volume={m.source}:{m.target}:O"
    options = ",".join(("ro" if m.read_only else "rw", *m.options, *(["U"] if m.chown else [])))
    return f"--volume={m.source}:{m.target}:{options}"


SHELL_UIDMAP, SHELL_GIDMAP = "$BUILDCAGE_UIDMAP", "$BUILDCAGE_GIDMAP"
"""Shell variables the pasteable script sets to the first phase's user namespace mapping."""


def podman_run_argv(plan: BuildPlan, phase: Phase | PhaseName | None = None,
                    later_phase: bool = False, *, idmap: dict[str, list[str]] | None = None,
                    interactive: bool = False, tty: bool = False) -> list[str]:
    """``later_phase``: in a user-namespaced profile, a phase after the first takes the first
    one's mapping (kept in shell variables), as the runner does; the first is kept (no --rm)
    until the end so podman hands its range to nobody else meanwhile. ``idmap`` (inspect's
    ``UidMap``/``GidMap``): that mapping, written out, for a command run at once (a debug
    shell, whose range a created container holds). ``interactive``/``tty``: ``-i``/``-t``, the
    container on this terminal."""
    spec = _phase(plan, phase)
    userns = plan.profile.userns != "host"
    keep = userns and not later_phase and idmap is None
    argv = ["podman", "run", *([] if keep else ["--rm"]), *(["-i"] if interactive else []),
            *(["-t"] if tty else []), f"--name={spec.container_name}",
            f"--network={spec.network}",
            f"--pids-limit={plan.limits.pids}",
            f"--ulimit=nofile={plan.limits.nofile}:{plan.limits.nofile}",
            f"--ulimit=nproc={plan.limits.nproc}:{plan.limits.nproc}"]
    argv += [f"--label={k}={v}" for k, v in plan.labels().items()]
    argv.append(f"--label=buildcage.phase={spec.name}")
    if userns and idmap is not None:
        argv += [f"--uidmap={m}" for m in idmap["UidMap"]]
        argv += [f"--gidmap={m}" for m in idmap["GidMap"]]
    elif userns and later_phase:
        argv += [f"--uidmap={SHELL_UIDMAP}", f"--gidmap={SHELL_GIDMAP}"]
    elif userns:
        argv.append(f"--userns={plan.profile.userns}")
    argv += [f"--security-opt={o}" for o in plan.security_options()]
    argv += [f"--cap-add={c}" for c in plan.profile.cap_add]
    argv += [f"--cap-drop={c}" for c in plan.profile.cap_drop]
    argv += [f"--env={k}={v}" for k, v in plan.environment().items()]
    argv += [_volume_flag(m) for m in spec.mounts]
    return argv + [plan.builder_image, *spec.command]


def _run_lines(argv: list[str], image: str) -> str:
    head_end = argv.index(image)

    def quote(arg: str) -> str:  # the mapping variables must expand
        for var in (SHELL_UIDMAP, SHELL_GIDMAP):
            if arg.endswith("=" + var):
                return f'{arg.removesuffix(var)}"{var}"'
        return shlex.quote(arg)

    lines = [shlex.join(argv[:2])] + [quote(a) for a in argv[2:head_end]]
    lines.append(shlex.join(argv[head_end:]))
    return " \\\n  ".join(lines)


def podman_run(plan: BuildPlan) -> str:
    """Shell commands that run the same build, phase by phase; one option a line for reading.

    The secrets (build arguments, --secret files) are created from the files ``buildcage plan``
    wrote into its private per-build directory, and removed at the end like the runner does.
    """
    # The build's own folders: a build prepared and never run makes none (stores.make_build_dirs).
    out = ["set -e", *(f"mkdir -p -m 700 {shlex.quote(str(folder))}" for folder in
                       (plan.facts_dir, *([plan.output_dir] if plan.writes_archive else [])))]
    cleanup = [f"rm -rf {shlex.quote(str(plan.build_dir))}"]
    if plan.profile.store == "fresh":
        out.append(f"podman volume create {shlex.quote(plan.store_volume)} >/dev/null")
        cleanup.append(f"podman volume rm --force {shlex.quote(plan.store_volume)}")
    for name in plan.secret_data():
        # The auth file is read where it is; the rest from the private per-build directory.
        src = (plan.authfile if plan.authfile is not None and name == plan.secret_name("auth")
               else plan.build_dir / "secrets" / name)
        out.append(f"base64 -w0 {shlex.quote(str(src))} | podman secret create "
                   f"{shlex.quote(name)} - >/dev/null")
        cleanup.append(f"podman secret rm {shlex.quote(name)} >/dev/null")
    phases = plan.phases()
    userns = plan.profile.userns != "host"
    if userns:
        # Right after a container exits podman may still hold its /dev/shm: retry briefly.
        cleanup.insert(0, f"for i in 1 2 3 4 5 6 7 8; do podman rm -f "
                          f"{shlex.quote(phases[0].container_name)} >/dev/null 2>&1 && break; "
                          "sleep 0.5; done")
    out.append("trap " + shlex.quote("; ".join(["set +e", *cleanup])) + " EXIT")
    for i, spec in enumerate(phases):
        out.append(f"# {spec.name}: network {spec.network}"
                   + ("" if spec.trusted else ", runs the Containerfile's steps"))
        out.append(_run_lines(podman_run_argv(plan, spec, later_phase=i > 0), plan.builder_image))
        if userns and i == 0:
            first = shlex.quote(spec.container_name)
            out.append("BUILDCAGE_UIDMAP=$(podman inspect --format "
                       f"'{{{{index .HostConfig.IDMappings.UIDMap 0}}}}' {first})")
            out.append("BUILDCAGE_GIDMAP=$(podman inspect --format "
                       f"'{{{{index .HostConfig.IDMappings.GIDMap 0}}}}' {first})")
            out.append(f'chown "$(echo "$BUILDCAGE_UIDMAP" | cut -d: -f2)" '
                       f"{shlex.quote(str(plan.facts_dir))}")
    return "\n".join(out)


class NoPodForm(UserError):
    """A plan a Kubernetes Pod cannot express."""


def check_pod_form(plan: BuildPlan) -> None:
    """Raises NoPodForm when the plan mounts something no Pod volume can be."""
    overlays = [m for m in plan.store_mounts() if m.kind == "overlay"]
    if overlays:
        raise NoPodForm(
            f"profile {plan.profile.name} cannot run as a Kubernetes Pod: it reads the host's "
            "image store through overlays (the builder's writes stay its own), and a Pod has no "
            "such volume: a read-only hostPath stops Buildah committing on a host image (it "
            "writes mount points into the layers), a writable one hands the builder the host's "
            "images. Use --profile project or isolated")


def _pvc_name(plan: BuildPlan) -> str:
    return plan.store_volume


def kube_pod(plan: BuildPlan, phase: Phase | PhaseName | None = None) -> dict[str, Any]:
    """A Pod running one phase of the same build (playable with ``podman kube play``).

    A fresh store is a PersistentVolumeClaim named like the store volume (podman kube play
    maps a claim to the named volume), so the phases' Pods share it as the containers do.
    The build phase's Pod has no host network; on a cluster, the NetworkPolicy in
    ``kube_manifest`` denies it all egress."""
    check_pod_form(plan)
    spec = _phase(plan, phase)
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if any(m.kind == "secret" for m in spec.mounts):
        # One Secret per phase (kube_secret_name), each key a file in /run/secrets: the same
        # paths podman's own secrets give the containers. ``optional`` must be spelled out:
        # podman 4.3's kube play panics on a secret volume without it.
        volumes.append({"name": "secrets", "secret": {
            "secretName": plan.kube_secret_name(spec.name), "optional": False}})
        mounts.append({"name": "secrets", "readOnly": True, "mountPath": SECRETS_DIR})
    for i, m in enumerate(spec.mounts):
        name = f"v{i}-" + "".join(c if c.isalnum() else "-" for c in m.purpose.lower())[:40]
        name = name.rstrip("-")
        if m.kind == "secret":
            continue
        if m.kind == "volume":
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": _pvc_name(plan)}})
        else:
            kind = "CharDevice" if m.kind == "device" else ("Directory" if not m.file and not
                m.source.endswith((".conf", ".json")) else "File")
            if kind == "Directory" and Path(m.source).is_relative_to(plan.build_dir):
                kind = "DirectoryOrCreate"  # the build's own folders: made by its run only
            volumes.append({"name": name, "hostPath": {"path": m.source, "type": kind}})
        mounts.append({"name": name, "readOnly": m.read_only, "mountPath": m.target})
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
    annotations["buildcage/phase"] = spec.name
    spec_extra: dict[str, Any] = {}
    if plan.profile.userns != "host":
        # Kubernetes' own switch for a user namespace. podman 4.3's kube play fails such a pod
        # with host networking (sysfs); better a loud failure than a silently weaker builder.
        spec_extra["hostUsers"] = False
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": spec.container_name,
                     "labels": {"app": "buildcage", "buildcage-phase": spec.name,
                                **plan.owner_labels()},
                     "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "hostNetwork": spec.network == "host",
            **spec_extra,
            "containers": [{
                "name": "builder",
                "image": plan.builder_image,
                "command": list(spec.command),
                "env": [{"name": k, "value": v} for k, v in plan.environment().items()],
                "securityContext": security,
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }


def network_policy(plan: BuildPlan) -> dict[str, Any]:
    """Denies the build phase's Pod every connection (no egress or ingress rule at all)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{plan.container_name}-build-isolated"},
        "spec": {"podSelector": {"matchLabels": {"buildcage-phase": "build"}},
                 "policyTypes": ["Ingress", "Egress"]},
    }


def persistent_volume_claim(plan: BuildPlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": _pvc_name(plan), "labels": {"app": "buildcage"}},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "10Gi"}}},
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
    """Every document of the build: the shared claim (fresh store), the build phase's
    NetworkPolicy, then one Pod per phase, to be run in order, each after the last finished."""
    docs: list[dict[str, Any]] = []
    if plan.profile.store == "fresh":
        docs.append(persistent_volume_claim(plan))
    docs.append(network_policy(plan))
    docs += [kube_pod(plan, spec) for spec in plan.phases()]
    secrets = [(spec.name, plan.kube_secret_data(spec.name)) for spec in plan.phases()]
    secrets = [(name, data) for name, data in secrets if data]
    head = ("# buildcage build plan for Kubernetes: run the Pods in order (fetch, build,\n"
            "# publish), each after the previous one succeeded. The build Pod runs the\n"
            "# Containerfile's steps and gets no network. `podman kube play` plays each Pod.\n")
    for phase, data in secrets:  # never the values themselves: this text is printed
        head += (f"# The {phase} Pod reads the Secret {plan.kube_secret_name(phase)} (keys: "
                 f"{', '.join(sorted(data))}); create it first, e.g. kubectl create secret "
                 f"generic {plan.kube_secret_name(phase)} --from-file=KEY=FILE ...\n")
    return head + "---\n".join(to_yaml(d) + "\n" for d in docs)
