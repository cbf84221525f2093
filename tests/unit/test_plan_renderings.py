"""One plan, three renderings: podman-py arguments, the pasteable command and the Pod manifest
must describe the same container. These tests compare them field by field."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.plan import mcs_level
from tui.engine.planner import PlanError, make_plan
from tui.engine.renderings import create_kwargs, kube_pod, podman_run, podman_run_argv

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
PROFILES = ["host-ro", "isolated", "project", "host-rw"]


@pytest.fixture(autouse=True)
def _data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def plan_for(profile: str, **options):
    return make_plan(HELLO, config=Config(), profile=profile, confirmed=True, **options)


def mounts_from_kwargs(kwargs: dict) -> set[tuple[str, str, bool]]:
    out = {(m["source"], m["target"], m["read_only"]) for m in kwargs["mounts"]}
    out |= {(name, v["bind"], v["mode"] == "ro") for name, v in kwargs["volumes"].items()}
    out |= {(d.split(":")[0], d.split(":")[1], False) for d in kwargs["devices"]}
    return out


def mounts_from_argv(argv: list[str]) -> set[tuple[str, str, bool]]:
    out = set()
    for arg in argv:
        for flag in ("--volume=", "--device="):
            if arg.startswith(flag):
                source, target, mode = arg.removeprefix(flag).split(":")
                out.add((source, target, mode.split(",")[0] == "ro"))
    return out


def mounts_from_pod(pod: dict) -> set[tuple[str, str, bool]]:
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    out = set()
    for m in pod["spec"]["containers"][0]["volumeMounts"]:
        v = volumes[m["name"]]
        source = v["hostPath"]["path"] if "hostPath" in v else "emptyDir"
        out.add((source, m["mountPath"], m["readOnly"]))
    return out


@pytest.mark.parametrize("profile", PROFILES)
def test_three_renderings_describe_the_same_container(profile):
    plan = plan_for(profile, push="127.0.0.1:5000/demo/hello:1")
    kwargs, argv, pod = create_kwargs(plan), podman_run_argv(plan), kube_pod(plan)
    from_kwargs = mounts_from_kwargs(kwargs)
    assert from_kwargs == mounts_from_argv(argv)
    pod_mounts = {(plan.store_volume if s == "emptyDir" else s, t, ro)
                  for s, t, ro in mounts_from_pod(pod)}
    assert from_kwargs == pod_mounts
    container = pod["spec"]["containers"][0]
    assert kwargs["command"] == argv[argv.index(plan.builder_image) + 1:] == container["command"]
    assert kwargs["image"] == container["image"] == plan.builder_image
    env = {e["name"]: e["value"] for e in container["env"]}
    assert kwargs["environment"] == env == {"BUILDAH_ISOLATION": "chroot"}
    assert kwargs["network_mode"] == "host" and "--network=host" in argv
    assert pod["spec"]["hostNetwork"] is True


@pytest.mark.parametrize("profile", PROFILES)
def test_the_pasteable_command_parses_back_to_the_same_argv(profile):
    plan = plan_for(profile)
    text = podman_run(plan).split("\npodman volume rm")[0]
    assert shlex.split(text.replace("\\\n", " ")) == podman_run_argv(plan)


def test_no_profile_mounts_an_engine_socket_and_context_is_read_only():
    for profile in PROFILES:
        plan = plan_for(profile)
        for m in plan.mounts():
            assert not m.source.endswith(".sock")
        assert [m.read_only for m in plan.mounts() if m.target == "/context"] == [True]


def test_profiles_lay_out_the_store_as_the_article_says():
    ro, iso, proj, rw = (plan_for(p) for p in PROFILES)
    targets = {p.profile.name: {m.target: m for m in p.mounts()} for p in (ro, iso, proj, rw)}
    shared = targets["host-ro"]["/var/lib/shared"]
    assert shared.source == "/var/lib/containers/storage" and shared.read_only
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


def test_command_builds_then_pushes_with_our_protocol_lines():
    plan = plan_for("host-ro", push="127.0.0.1:5000/demo/hello:1", build_args=(("A", "1"),),
                    target_stage="final", no_cache=True)
    script = plan.command()[2]
    assert plan.command()[:2] == ["sh", "-ec"]
    bud, push = script.index("buildah bud"), script.index("buildah push")
    assert bud < script.index("buildcage: push 127.0.0.1:5000/demo/hello:1") < push
    for flag in ("--pull=missing", "--no-cache", "--build-arg A=1", "--target final",
                 "--layers", "--force-rm"):
        assert flag in script
    assert "docker://127.0.0.1:5000/demo/hello:1" in script


def test_oci_target_mounts_the_output_directory(tmp_path):
    plan = plan_for("host-ro", push=f"oci:{tmp_path}/out:v1")
    out = [m for m in plan.mounts() if m.target == "/output"]
    assert out and out[0].source == f"{tmp_path}/out" and not out[0].read_only
    assert "oci:/output:v1" in plan.command()[2]


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
    mount = [m for m in plan.mounts() if m.source == str(auth)]
    assert mount and mount[0].read_only and mount[0].target == "/run/buildcage/auth.json"
    script = plan.command()[2]
    assert script.count("--authfile /run/buildcage/auth.json") == 2  # bud pulls, push pushes
    rendered = podman_run(plan)
    assert "c2VjcmV0" not in rendered and "c2VjcmV0" not in str(create_kwargs(plan))
    assert "REGISTRY_AUTH_FILE" not in rendered
