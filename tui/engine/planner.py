"""Turning what a user asked for into a checked BuildPlan, with a clear message for bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import uuid
from pathlib import Path

from tui.engine.config import LOCAL_REGISTRY, Config, data_dir, registries_conf
from tui.engine.containerfile import find_containerfile
from tui.engine.context import needs_snapshot
from tui.engine.errors import UserError
from tui.engine.overlay import (
    LOCAL,
    ProbeRecord,
    choose,
    current_record,
    service_key,
    store_record,
)
from tui.engine.paths import UnsafePath, check_context, check_project_name
from tui.engine.plan import BuildPlan
from tui.engine.profiles import Profile, ProfileSet, confirmation_message, confirmation_needed
from tui.engine.registry import (
    BadReference,
    ImageRef,
    OciTarget,
    check_oci_dir,
    parse_push_target,
    parse_reference,
)


class PlanError(UserError, ValueError):
    """The request cannot become a build; the message tells the user what to change."""


def new_build_id() -> str:
    return uuid.uuid4().hex[:12]


def project_name(context: Path) -> str:
    """Directory name plus a short hash of its path: two `app/` folders are two projects.
    Always a valid project name (``paths.PROJECT_RE``)."""
    base = re.sub(r"[^a-z0-9_.-]+", "-", context.name.lower()).strip("-._")[:57].rstrip("-._")
    return f"{base or 'context'}-{hashlib.sha256(str(context).encode()).hexdigest()[:6]}"


def default_tag(context: Path) -> str:
    """``localhost/buildcage/NAME:latest``, NAME always a valid repository component (a
    ``mktemp -d`` name like ``tmp5mcuxw6_`` ends in a separator, which a reference may not)."""
    base = re.sub(r"[^a-z0-9_.-]+", "-", context.name.lower())
    base = re.sub(r"[_.-]{2,}", "-", base).strip("-._") or "image"
    return f"localhost/buildcage/{base}:latest"


def selinux_enabled() -> bool:
    return Path("/sys/fs/selinux/enforce").exists()


def find_authfile() -> Path | None:
    """The user's containers auth file, where podman and buildah look for it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    candidates = [
        os.environ.get("REGISTRY_AUTH_FILE", ""),
        f"{runtime}/containers/auth.json" if runtime else "",
        f"/run/containers/{os.getuid()}/auth.json",
        str(Path.home() / ".config/containers/auth.json"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def parse_build_args(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise PlanError(f"build argument {pair!r} must look like NAME=VALUE")
        out.append((key, value))
    return tuple(out)


SECRET_MAX_BYTES = 512000
"""podman's own limit for a secret's contents."""
_SECRET_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SECRETISH_RE = re.compile(r"TOKEN|PASSW|SECRET|KEY|CREDENTIAL|AUTH|PRIVATE", re.IGNORECASE)


def parse_secrets(specs: list[str]) -> tuple[tuple[str, str], ...]:
    """``id=NAME,src=FILE`` (Buildah's form) -> ((NAME, absolute FILE), ...), each checked."""
    out: dict[str, str] = {}
    for spec in specs:
        fields = dict(part.partition("=")[::2] for part in spec.split(",") if part)
        name, src = fields.get("id", ""), fields.get("src", "")
        if set(fields) - {"id", "src"} or not name or not src:
            raise PlanError(f"secret {spec!r} must look like id=NAME,src=FILE")
        if not _SECRET_ID_RE.fullmatch(name):
            raise PlanError(f"secret id {name!r}: use letters, digits, '_', '.', '-' "
                            "(at most 64, starting with a letter or digit)")
        if name in out:
            raise PlanError(f"secret id {name!r} given twice")
        path = Path(src).expanduser()
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if not path.is_file():
            raise PlanError(f"secret {name!r}: {src!r} is not a file")
        if path.stat().st_size > SECRET_MAX_BYTES:
            raise PlanError(f"secret {name!r}: {src!r} is larger than {SECRET_MAX_BYTES} bytes")
        if not os.access(path, os.R_OK):
            raise PlanError(f"secret {name!r}: {src!r} cannot be read")
        out[name] = str(path)
    return tuple(out.items())


def secret_looking_args(build_args: tuple[tuple[str, str], ...]) -> list[str]:
    """Names of build arguments that look like secrets (they end up in the image's history)."""
    return [key for key, _value in build_args if _SECRETISH_RE.search(key)]


def make_plan(
    context: str | Path,
    *,
    config: Config,
    profile: str | None = None,
    containerfile: str | Path | None = None,
    tag: str | None = None,
    push: str = "",
    build_args: tuple[tuple[str, str], ...] = (),
    secrets: tuple[tuple[str, str], ...] = (),
    target_stage: str = "",
    no_cache: bool = False,
    project: str | None = None,
    confirmed: bool | frozenset[str] = False,
    build_id: str | None = None,
    snapshot: bool | None = None,
    remote: bool = False,
    load: bool = False,
    load_overwrite: bool = False,
    overlay_probe: ProbeRecord | None | bool = True,
) -> BuildPlan:
    """Check every input and build the plan; raises PlanError with a message for people.

    ``snapshot``: True, the builder reads a copy of the context made for this build (see
    ``tui.engine.context``); False, it mounts the context itself read-only; None (default),
    a copy only when the builder could not read the context (``context.needs_snapshot``).
    ``remote``: the podman service runs on another host (see ``BuildPlan.remote``): always a
    snapshot, copied to the builder.

    ``overlay_probe``: the kernel overlay probe to choose the overlay by (``tui.engine.overlay``);
    True (default) reads the data directory's record if it holds for this kernel and podman."""
    ctx = Path(context).expanduser().resolve()
    if not ctx.exists():
        raise PlanError(f"build context {str(context)!r} does not exist")
    if not ctx.is_dir():
        raise PlanError(f"build context {str(context)!r} is not a directory")
    data = data_dir().resolve()
    try:
        check_context(ctx, data)
        if project is not None:
            check_project_name(project)
    except UnsafePath as exc:
        raise PlanError(str(exc)) from exc
    if containerfile:
        cf = Path(containerfile).expanduser()
        cf = (cf if cf.is_absolute() else (Path.cwd() / cf)).resolve()
        if not cf.is_file():
            raise PlanError(f"Containerfile {str(containerfile)!r} does not exist")
    else:
        found = find_containerfile(ctx)
        if found is None:
            raise PlanError(f"no Containerfile or Dockerfile in {ctx}; pass one with -f")
        cf = found.resolve()
    try:
        profiles = ProfileSet.from_config(config.profiles)
        chosen = profiles.get(profile or config.default_profile)
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    unconfirmed = confirmation_needed(chosen, confirmed)
    if unconfirmed:
        raise PlanError(confirmation_message(chosen, unconfirmed))
    final_tag = tag or default_tag(ctx)
    try:
        ref = parse_reference(final_tag)
        if load and ref.digest:
            raise PlanError(f"--load names the image on the host by its tag: {final_tag!r} "
                            "has a digest; give --tag NAME:TAG")
        target = parse_push_target(push)
        if isinstance(target, OciTarget):
            # The plan keeps the resolved directory: what was checked is what gets mounted.
            target = OciTarget(check_oci_dir(target.path, home=Path.home(), data_dir=data),
                               target.tag)
            push = str(target)
    except BadReference as exc:
        raise PlanError(str(exc)) from exc
    if chosen.extra_stores:
        # The builder mounts where a path leads today, not a link that may be re-pointed later
        # (and whatever checks the profile's stores see the same real path).
        chosen = dataclasses.replace(
            chosen, extra_stores=tuple(os.path.realpath(os.path.expanduser(e))
                                       for e in chosen.extra_stores))
    if remote:
        check_remote_profile(chosen)
        snapshot = True
    build_id = build_id or new_build_id()
    if snapshot is None:
        snapshot = needs_snapshot(ctx, cf, chosen.userns)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", build_id):
        raise PlanError(f"build id {build_id!r} must be 1 to 64 of A-Z a-z 0-9 _ -")
    cache_repo = cache_repository(config, chosen, target, project or project_name(ctx))
    cache_note = ""
    if remote and cache_repo and is_loopback(cache_repo.split("/", 1)[0]):
        # The trusted phases run on the service's host: its loopback is another machine's, so
        # the cache (and the credentials sent to it) would go to whatever listens there.
        cache_note = (f"registry cache off for this build: {cache_repo.split('/', 1)[0]} is "
                      "this machine's loopback, which the podman service on another host does "
                      "not reach (set cache_registry to a registry that host reaches)")
        cache_repo = ""
    plan = BuildPlan(
        cache_repo=cache_repo,
        cache_note=cache_note,
        cpus=1 if remote else (os.cpu_count() or 1),
        build_id=build_id,
        context=ctx,
        containerfile=cf,
        profile=chosen,
        project=project or project_name(ctx),
        tag=str(ref),
        builder_image=config.builder_image,
        data_dir=data,
        build_args=build_args,
        secrets=secrets,
        target_stage=target_stage,
        push=push.strip(),
        no_cache=no_cache,
        authfile=find_authfile(),
        selinux_enabled=selinux_enabled(),
        registries_conf=registries_conf(config),
        context_snapshot=data / "snapshots" / build_id if snapshot else None,
        remote=remote,
        load=load or load_overwrite,
        load_overwrite=load_overwrite,
    )
    try:
        _ = plan.store_dir  # refuses a store path that leads out of buildcage's data directory
    except UnsafePath as exc:
        raise PlanError(str(exc)) from exc
    service = service_key(config.podman_url) if remote else LOCAL
    record = (overlay_probe if isinstance(overlay_probe, ProbeRecord)
              else current_record(data, service) if overlay_probe is True else None)
    return with_overlay(plan, record)


def with_overlay(plan: BuildPlan, record: ProbeRecord | None) -> BuildPlan:
    """``plan`` with the overlay its profile, the probe ``record`` and its store's own record
    choose (tui.engine.overlay.choose)."""
    store_dir = plan.store_dir
    if plan.remote and plan.profile.store == "project":
        store = "unknown"  # a kept volume on the service's host
    else:
        store = store_record(store_dir / "storage" if store_dir is not None else None)
    overlay = choose(plan.profile.overlay, plan.profile.userns, record, store)
    return dataclasses.replace(plan, overlay=overlay.kind, overlay_reason=overlay.reason)



CACHE_NAMESPACE = "buildcage-cache"


def cache_repository(config: Config, profile: Profile, push: ImageRef | OciTarget | None,
                     project: str) -> str:
    """``REGISTRY/buildcage-cache/PROJECT`` for a profile with ``registry_cache``, "" for none.

    The registry: ``cache_registry`` from the config ("" turns the cache off), else the push
    target's registry when the config names it under ``registries`` (buildcage writes no cache
    repositories into a registry nobody configured), else the local registry when configured."""
    if not profile.registry_cache or profile.store != "fresh":
        return ""
    registry = config.cache_registry
    if registry is None:
        if isinstance(push, ImageRef) and push.registry in config.registries:
            registry = push.registry
        elif LOCAL_REGISTRY in config.registries:
            registry = LOCAL_REGISTRY
        else:
            registry = ""
    if not registry:
        return ""
    return f"{registry}/{CACHE_NAMESPACE}/{_repository_component(project)}"


def is_loopback(registry: str) -> bool:
    """Whether ``registry`` (``host[:port]``) names this machine's loopback."""
    if registry.startswith("["):  # [::1]:5000
        host = registry[1:].split("]", 1)[0]
    else:
        host = registry.rsplit(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _repository_component(project: str) -> str:
    """A project name as one repository path component: as it is when the reference grammar
    allows it, else its allowed characters and a digest of the name (so ``a..b`` and ``a.b``
    stay two caches)."""
    if re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", project):
        return project
    base = re.sub(r"[^a-z0-9]+", "-", project).strip("-")[:40] or "project"
    return f"{base}-{hashlib.sha256(project.encode()).hexdigest()[:8]}"


def check_remote_profile(profile: Profile) -> None:
    """What a profile cannot do on a podman service on another host; raises PlanError."""
    if profile.extra_stores:
        # Paths on the service's host: buildcage cannot resolve them or look inside them from
        # here (issue 7, item 6: facts about what is mounted come from the real thing).
        raise PlanError(f"profile {profile.name!r} mounts extra stores "
                        f"({', '.join(profile.extra_stores)}): paths on the podman host, which "
                        "buildcage cannot check from this machine; run buildcage on the podman "
                        "host, or use a profile without extra_stores")
    if profile.store == "host":
        # The builder needs a private copy of the store's mount-program record bind-mounted
        # over the host's own (see BuildPlan.store_mounts); that file lives on this machine.
        raise PlanError(f"profile {profile.name!r} writes the host store, which needs a file "
                        "of this machine mounted into it: not served on a podman service on "
                        "another host; run buildcage on the podman host, or use host-ro, "
                        "project or isolated")
