"""One plan, three renderings: podman-py arguments, the pasteable command and the Pod manifest
must describe the same container. These tests compare them field by field."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.plan import mcs_level
from tui.engine.planner import PlanError, make_plan
from tui.engine.renderings import (
    NoPodForm,
    create_kwargs,
    kube_manifest,
    kube_pod,
    podman_run,
    podman_run_argv,
)

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
PROFILES = ["host-ro", "isolated", "project", "host-rw"]


pytestmark = pytest.mark.usefixtures("data_home")


def plan_for(profile: str, **options):
    return make_plan(HELLO, config=Config(), profile=profile, confirmed=True, **options)


def mounts_from_kwargs(kwargs: dict) -> set[tuple[str, str, bool]]:
    out = {(m["source"], m["target"], m["read_only"]) for m in kwargs["mounts"]}
    out |= {(name, v["bind"], v["mode"] == "ro") for name, v in kwargs["volumes"].items()}
    out |= {(d.split(":")[0], d.split(":")[1], False) for d in kwargs["devices"]}
    # an overlay volume's source is never written (the container's writes have their own upper)
    out |= {(o["source"], o["destination"], True) for o in kwargs.get("overlay_volumes", [])}
    return out


def mounts_from_argv(argv: list[str]) -> set[tuple[str, str, bool]]:
    out = set()
    for arg in argv:
        for flag in ("--volume=", "--device="):
            if arg.startswith(flag):
                source, target, mode = arg.removeprefix(flag).split(":")
                out.add((source, target, mode.split(",")[0] in ("ro", "O")))
    return out


def mounts_from_pod(pod: dict, plan) -> set[tuple[str, str, bool]]:
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    out = set()
    for m in pod["spec"]["containers"][0]["volumeMounts"]:
        v = volumes[m["name"]]
        if "hostPath" in v:
            out.add((v["hostPath"]["path"], m["mountPath"], m["readOnly"]))
        elif "persistentVolumeClaim" in v:
            out.add((v["persistentVolumeClaim"]["claimName"], m["mountPath"], m["readOnly"]))
    return out


PHASES = ["fetch", "build", "publish"]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("profile", PROFILES)
def test_three_renderings_describe_the_same_container(profile, phase):
    plan = plan_for(profile, push="127.0.0.1:5000/demo/hello:1")
    kwargs = create_kwargs(plan, phase)
    argv = podman_run_argv(plan, phase)
    from_kwargs = mounts_from_kwargs(kwargs)
    assert from_kwargs == mounts_from_argv(argv)
    if profile == "host-ro":  # its overlays of the host store have no Pod form
        with pytest.raises(NoPodForm, match="cannot run as a Kubernetes Pod"):
            kube_pod(plan, phase)
        return
    pod = kube_pod(plan, phase)
    assert from_kwargs == mounts_from_pod(pod, plan)
    container = pod["spec"]["containers"][0]
    assert kwargs["command"] == argv[argv.index(plan.builder_image) + 1:] == container["command"]
    assert kwargs["image"] == container["image"] == plan.builder_image
    env = {e["name"]: e["value"] for e in container["env"]}
    assert kwargs["environment"] == env == {"BUILDAH_ISOLATION": "chroot"}
    network = "none" if phase == "build" else "host"
    assert kwargs["network_mode"] == network and f"--network={network}" in argv
    assert pod["spec"]["hostNetwork"] is (network == "host")
    assert kwargs["labels"]["buildcage.phase"] == phase


def run_commands(script: str) -> list[list[str]]:
    """The ``podman run`` commands of a pasteable script, each joined over its continuations."""
    commands, current = [], None
    for line in script.splitlines():
        if current is None and line.startswith("podman run"):
            current = ""
        if current is not None:
            current += line.removesuffix("\\") + " "
            if not line.endswith("\\"):
                commands.append(shlex.split(current))
                current = None
    return commands


@pytest.mark.parametrize("profile", PROFILES)
def test_the_pasteable_script_runs_every_phase_with_the_same_argv(profile):
    plan = plan_for(profile, push="127.0.0.1:5000/demo/hello:1")
    expected = [podman_run_argv(plan, spec, later_phase=i > 0)
                for i, spec in enumerate(plan.phases())]
    assert [argv[argv.index(plan.builder_image) + 1] for argv in expected] == ["sh"] * 3
    assert run_commands(podman_run(plan)) == expected


def test_the_pasteable_script_makes_and_removes_what_the_runner_does():
    plan = plan_for("isolated", build_args=(("A", "1"),))
    text = podman_run(plan)
    assert text.index("podman volume create") < text.index("podman run")
    assert f"podman secret create {plan.secret_name('args')}" in text
    trap = next(line for line in text.splitlines() if line.startswith("trap "))
    assert plan.store_volume in trap and plan.secret_name("args") in trap


def test_no_profile_mounts_an_engine_socket_and_context_is_read_only():
    for profile in PROFILES:
        plan = plan_for(profile)
        for m in plan.mounts():
            assert not m.source.endswith(".sock")
        assert [m.read_only for m in plan.mounts() if m.target == "/context"] == [True]


def test_profiles_lay_out_the_store_as_the_article_says():
    ro, iso, proj, rw = (plan_for(p) for p in PROFILES)
    targets = {p.profile.name: {m.target: m for m in p.mounts()} for p in (ro, iso, proj, rw)}
    for part in ("overlay", "overlay-images", "overlay-layers"):
        shared = targets["host-ro"][f"/var/lib/shared/{part}"]
        assert shared.source == f"/var/lib/containers/storage/{part}"
        assert shared.kind == "overlay" and shared.read_only
    assert not targets["host-ro"]["/var/lib/containers"].read_only
    assert targets["isolated"]["/var/lib/containers"].kind == "volume"
    assert create_kwargs(iso)["idmappings"]["AutoUserNs"] is True
    assert "/var/lib/shared" not in targets["project"]
    assert not targets["host-rw"]["/var/lib/containers/storage"].read_only
    assert create_kwargs(rw)["security_opt"] == ["label=disable"]
    assert ro.store_dir != proj.store_dir


def test_project_stores_and_selinux_levels_differ_per_project():
    a, b = plan_for("project", project="alpha"), plan_for("project", project="beta")
    assert a.store_dir != b.store_dir
    assert mcs_level("alpha") != mcs_level("beta")
    assert mcs_level("alpha") == mcs_level("alpha")


def test_phases_split_trusted_work_from_the_containerfile_steps():
    plan = plan_for("host-ro", push="127.0.0.1:5000/demo/hello:1", build_args=(("A", "1"),),
                    target_stage="final", no_cache=True)
    fetch, build, publish = plan.phases()
    assert (fetch.name, build.name, publish.name) == ("fetch", "build", "publish")
    assert "buildah pull" in fetch.command[2] and "buildah bud" not in fetch.command[2]
    script = build.command[2]
    for flag in ("--pull=never", "--no-cache", "--build-arg A ", "--target final",
                 "--layers", "--force-rm"):
        assert flag in script
    assert "A=1" not in script, "build argument values are never on a command line"
    assert "buildah push" not in script and "buildah pull" not in script
    assert "buildah inspect" in publish.command[2]
    assert "docker://127.0.0.1:5000/demo/hello:1" in publish.command[2]
    assert "--digestfile /buildcage/facts/digest" in publish.command[2]
    targets = {p.name: {m.target for m in p.mounts} for p in (fetch, build, publish)}
    assert "/context" in targets["build"] and "/context" not in targets["publish"]
    assert "/buildcage/facts" in targets["publish"] and "/buildcage/facts" not in targets["build"]


def test_a_fresh_store_commits_once_and_the_others_per_step():
    """Unless the fresh store's steps are pushed as a registry cache (test_registry_cache)."""
    no_registry = Config(registries={})
    for profile in PROFILES:
        argv = make_plan(HELLO, config=no_registry, profile=profile, confirmed=True).bud_argv()
        fresh = profile == "isolated"
        assert ("--layers=false" in argv) == fresh and ("--layers" in argv) == (not fresh)


def test_no_fetch_phase_when_the_containerfile_names_no_image(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\nCOPY a /a\n")
    plan = make_plan(context, config=Config(), profile="host-ro")
    assert [p.name for p in plan.phases()] == ["build", "publish"]


def test_build_arguments_travel_in_a_secret_not_on_a_command_line():
    plan = plan_for("isolated", build_args=(("TOKEN", "s3cr'et value"),))
    kwargs = create_kwargs(plan, "build")
    assert "s3cr" not in repr(kwargs) and "s3cr" not in podman_run(plan)
    assert "s3cr" not in kube_manifest(plan)
    assert kwargs["secrets"] == [{"source": plan.secret_name("args"),
                                  "target": "build-args.env"}]
    data = plan.secret_contents()[plan.secret_name("args")].decode()
    assert shlex.split(data.split("=", 1)[1]) == ["s3cr'et value"]
    assert base64.b64decode(plan.secret_data()[plan.secret_name("args")]).decode() == data
    script = plan.build_command()[2]
    assert "base64 -d < /run/secrets/build-args.env > /var/tmp/buildcage-secrets/" in script
    assert ". /var/tmp/buildcage-secrets/build-args.env" in script


@pytest.mark.parametrize(("options", "message"), [
    ({"profile": "host-rw", "confirmed": False}, "confirm it explicitly"),
    ({"tag": "Bad:tag"}, "lowercase"),
    ({"push": "127.0.0.1:5000/x:bad tag"}, "invalid characters"),
    ({"profile": "nope"}, "no profile named 'nope'"),
    ({"containerfile": "/no/such/Containerfile"}, "does not exist"),
])
def test_bad_input_raises_a_plan_error_with_a_message(options, message):
    options = {"profile": "host-ro", "confirmed": True, **options}
    with pytest.raises(PlanError, match=message):
        make_plan(HELLO, config=Config(), **options)


def test_missing_context_and_containerfile(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        make_plan(tmp_path / "missing", config=Config())
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlanError, match="no Containerfile or Dockerfile"):
        make_plan(tmp_path / "empty", config=Config())


def test_credentials_come_from_the_auth_file_mounted_read_only(tmp_path, monkeypatch):
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"127.0.0.1:5000": {"auth": "c2VjcmV0OnNlY3JldA=="}}}')
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    plan = plan_for("host-ro", push="127.0.0.1:5000/demo/hello:1")
    name = plan.secret_name("auth")
    assert plan.secret_contents()[name] == auth.read_bytes()
    for phase in ("fetch", "publish"):
        mount = [m for m in plan.phase_mounts(phase) if m.source == name]
        assert mount and mount[0].kind == "secret" and mount[0].target == "/run/secrets/auth.json"
        script = plan.phase(phase).command[2]
        assert "--authfile /var/tmp/buildcage-secrets/auth.json" in script
        assert "base64 -d < /run/secrets/auth.json" in script
    # The phase that runs the Containerfile's steps never sees the credentials.
    assert not [m for m in plan.phase_mounts("build") if m.source == name]
    assert "--authfile" not in plan.build_command()[2]
    assert f"base64 -w0 {auth} | podman secret create {name} -" in podman_run(plan)
    rendered = podman_run(plan)
    assert "c2VjcmV0" not in rendered and "c2VjcmV0" not in str(create_kwargs(plan))
    assert "REGISTRY_AUTH_FILE" not in rendered


@pytest.mark.parametrize("profile,load", [("project", False), ("project", True),
                                          ("isolated", True), ("host-ro", False)])
def test_a_printed_plan_makes_the_build_folders_it_binds(profile: str, load: bool) -> None:
    """A build prepared and never run makes no ``builds/ID`` folder (``stores.make_build_dirs``),
    so what ``buildcage plan`` prints must make the ones it binds: the script with ``mkdir``,
    the Pods with ``DirectoryOrCreate`` (``podman kube play`` refuses a missing ``Directory``)."""
    from tui.engine.renderings import kube_pod
    from tui.engine.stores import write_plan_files

    plan = plan_for(profile, load=load)
    write_plan_files(plan)
    under = [m.source for spec in plan.phases() for m in spec.mounts
             if m.kind == "bind" and Path(m.source).is_relative_to(plan.build_dir)]
    assert str(plan.facts_dir) in under and (str(plan.output_dir) in under) == load
    script = podman_run(plan)
    made = {shlex.split(line)[-1] for line in script.splitlines() if line.startswith("mkdir ")}
    assert set(under) <= made, script
    for spec in plan.phases() if profile != "host-ro" else ():  # host-ro: no Pod form
        for volume in kube_pod(plan, spec)["spec"]["volumes"]:
            host = volume.get("hostPath")
            if host and Path(host["path"]).is_relative_to(plan.build_dir):
                assert host["type"] == "DirectoryOrCreate", host
            elif host and host["type"] in ("Directory", "File"):
                assert Path(host["path"]).exists(), host
