"""Every path a user can influence is checked: project names, store directories, oci: targets,
a Containerfile outside the context, the context itself. Each refusal has an exact message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.planner import PlanError, make_plan, project_name
from tui.engine.stores import write_plan_files

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "buildcage"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def plan(context: Path = HELLO, **options):
    return make_plan(context, config=Config(), confirmed=True, **options)


RULE = ("use 1 to 64 characters of a-z 0-9 _ . -, starting with a letter or digit "
        "(it names a directory of its store)")


@pytest.mark.parametrize("name", [
    "..", ".", "../../../../var/lib/containers/storage", "a/b", "/abs", "x/..", ".hidden",
    "-dash", "_under", "Upper", "a b", "", "a" * 65, "é", "a\n", "a:b",
])
def test_bad_project_names_are_refused(data, name):
    with pytest.raises(PlanError) as caught:
        plan(profile="host-ro", project=name)
    assert str(caught.value) == f"project name {name!r} is not allowed: {RULE}"


@pytest.mark.parametrize("name", ["a", "my-app", "app_2.0", "0" * 64, "x.y-z_1"])
def test_good_project_names_name_one_directory_under_the_stores(data, name):
    p = plan(profile="project", project=name)
    assert p.store_dir == data.resolve() / "stores" / "project" / name


@pytest.mark.parametrize("dirname", ["My App!", "...", "-x-", "_a_", "a" * 200, "ÄÖ"])
def test_default_project_names_are_always_valid(dirname, tmp_path, data):
    import re

    ctx = tmp_path / dirname
    ctx.mkdir()
    assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", project_name(ctx))


def test_a_store_symlinked_to_the_host_store_is_refused(data, tmp_path):
    target = tmp_path / "host-storage"  # stands for /var/lib/containers/storage
    target.mkdir()
    stores = data / "stores" / "host-ro"
    stores.mkdir(parents=True)
    (stores / "myproj").symlink_to(target)
    with pytest.raises(PlanError) as caught:
        plan(profile="host-ro", project="myproj")
    root = data.resolve() / "stores"
    assert str(caught.value) == (
        f"the store of project 'myproj' ({root}/host-ro/myproj) resolves to {target}: "
        f"buildcage keeps stores only in real directories under {root}; remove the symlink")
    assert list(target.iterdir()) == []


def test_a_symlinked_profile_directory_is_refused_too(data, tmp_path):
    (data / "stores").mkdir(parents=True)
    (data / "stores" / "project").symlink_to(tmp_path)
    with pytest.raises(PlanError, match="resolves to"):
        plan(profile="project", project="p")


def test_a_link_planted_after_planning_is_refused_before_anything_is_written(data, tmp_path):
    p = plan(profile="host-ro", project="late")
    target = tmp_path / "elsewhere"
    target.mkdir()
    p.store_dir.parent.mkdir(parents=True)
    p.store_dir.symlink_to(target)
    with pytest.raises(ValueError, match="resolves to"):
        write_plan_files(p)
    assert list(target.iterdir()) == []


def test_a_symlinked_data_directory_is_fine(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "link"))
    assert plan(profile="project", project="p").store_dir == real / "buildcage/stores/project/p"


# -- oci: targets -----------------------------------------------------------------------------
def _oci_message(shown: str, rest: str) -> str:
    return f"oci target {shown} {rest}"


@pytest.mark.parametrize(("path", "tree", "why"), [
    ("/etc/oci", "/etc", "the host's configuration"),
    ("/usr/local/oci", "/usr", "the host's programs"),
    ("/bin", "/bin", "the host's programs"),
    ("/boot/x", "/boot", "the host's boot files"),
    ("/dev/shm/x", "/dev", "devices"),
    ("/proc/self", "/proc", "kernel interfaces"),
    ("/sys/x", "/sys", "kernel interfaces"),
    ("/run/x", "/run", "runtime state"),
    ("/var/lib/containers/storage", "/var/lib/containers", "the host's image store"),
])
def test_oci_targets_in_system_trees_are_refused(data, home, path, tree, why):
    with pytest.raises(PlanError) as caught:
        plan(push=f"oci:{path}:v1")
    resolved = str(Path(path).resolve())
    shown = repr(path) if resolved == path else f"{path!r} (resolves to {resolved})"
    if resolved != path:  # /proc/self, /bin -> usr/bin on merged-/usr systems
        tree = next(t for t in ("/usr", "/proc") if resolved.startswith(t))
        why = {"/usr": "the host's programs", "/proc": "kernel interfaces"}[tree]
    assert str(caught.value) == (f"oci target {shown} is inside {tree} ({why}); name a "
                                 f"directory of your own, e.g. oci:{home}/oci/NAME")


@pytest.mark.parametrize("path", ["/", "/root", "/tmp", "/home", "/var", "/var/lib", "/srv"])
def test_oci_targets_that_are_shared_directories_themselves_are_refused(data, home, path):
    with pytest.raises(PlanError) as caught:
        plan(push=f"oci:{path}")
    assert str(caught.value) == (f"oci target {path!r} is the shared directory {path} itself; "
                                 f"name a directory of the image's own, e.g. oci:{home}/oci/NAME")


def test_oci_target_home_itself_and_the_data_directory_are_refused(data, home):
    with pytest.raises(PlanError, match=f"the shared directory {home} itself"):
        plan(push=f"oci:{home}")
    with pytest.raises(PlanError, match=r"\(buildcage's own data\)"):
        plan(push=f"oci:{data}/stores/x")


def test_oci_target_relative_is_refused(data):
    with pytest.raises(PlanError) as caught:
        plan(push="oci:out/dir:v1")
    assert str(caught.value) == "oci target path must be absolute: 'out/dir'"


def test_oci_target_through_a_symlink_is_checked_where_it_leads(data, home, tmp_path):
    (tmp_path / "innocent").symlink_to("/etc")
    with pytest.raises(PlanError, match=r"resolves to /etc/oci\) is inside /etc"):
        plan(push=f"oci:{tmp_path}/innocent/oci")


def test_unrelated_index_json_is_refused_and_untouched(data, home, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.json").write_text('{"mine": true}')
    (out / "style.css").write_text("body {}")
    with pytest.raises(PlanError) as caught:
        plan(push=f"oci:{out}:v1")
    assert str(caught.value) == (
        f"oci target {str(out)!r} already holds files that are not an OCI layout (index.json, "
        "style.css); buildcage writes only into a new or empty directory, an OCI layout (with "
        "an oci-layout file) or a directory it wrote before (marked .buildcage-oci)")
    assert (out / "index.json").read_text() == '{"mine": true}'
    assert sorted(os.listdir(out)) == ["index.json", "style.css"]


def test_oci_target_that_is_a_file_is_refused(data, home, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlanError, match="exists and is not a directory"):
        plan(push=f"oci:{tmp_path}/file")


def test_new_empty_marked_or_layout_oci_directories_are_accepted_and_marked(data, home, tmp_path):
    new = tmp_path / "new" / "dir"
    empty = tmp_path / "empty"
    empty.mkdir()
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text("{}")
    for directory in (new, empty, layout):
        p = plan(push=f"oci:{directory}:v1")
        write_plan_files(p)
        assert (directory / ".buildcage-oci").is_file()
        assert [m.source for m in p.phase_mounts("publish") if m.target == "/output"] == [
            str(directory)]
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / ".buildcage-oci").write_text("")
    (marked / "index.json").write_text("{}")
    plan(push=f"oci:{marked}")


def test_oci_directory_filled_after_planning_is_refused_at_preparation(data, home, tmp_path):
    out = tmp_path / "out"
    p = plan(push=f"oci:{out}:v1")
    out.mkdir()
    (out / "index.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds files that are not an OCI layout"):
        write_plan_files(p)
    assert not (out / ".buildcage-oci").exists()


def test_oci_plan_mounts_the_resolved_directory(data, home, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    p = plan(push=f"oci:{tmp_path}/link/out:v2")
    assert p.push == f"oci:{real}/out:v2"
    assert [m.source for m in p.phase_mounts("publish") if m.target == "/output"] == [
        f"{real}/out"]


# -- the Containerfile and the context ---------------------------------------------------------
def test_containerfile_outside_the_context_mounts_only_that_file(data, tmp_path):
    elsewhere = tmp_path / "home-like"
    elsewhere.mkdir()
    (elsewhere / "Containerfile.dev").write_text("FROM scratch\n")
    (elsewhere / "id_rsa").write_text("secret")
    for snapshot in (True, False):
        p = plan(containerfile=elsewhere / "Containerfile.dev", snapshot=snapshot)
        sources = [m.source for m in p.mounts()]
        assert str(elsewhere) not in sources
        files = [m for m in p.mounts() if m.target.startswith("/buildcage/containerfile")]
        assert len(files) == 1 and files[0].read_only and files[0].file
        assert files[0].target == "/buildcage/containerfile/Containerfile.dev"
        expected = (p.context_snapshot / "containerfile" / "Containerfile.dev" if snapshot
                    else elsewhere / "Containerfile.dev")
        assert files[0].source == str(expected)
        assert "-f /buildcage/containerfile/Containerfile.dev" in p.command()[2]


def test_the_builder_reads_a_snapshot_handed_to_its_root_only_in_a_user_namespace(data):
    for profile, chown in (("isolated", True), ("host-ro", False), ("project", False)):
        p = plan(profile=profile, snapshot=True)
        ctx = [m for m in p.mounts() if m.target == "/context"]
        assert len(ctx) == 1 and ctx[0].read_only and ctx[0].chown is chown
        assert ctx[0].source == str(data.resolve() / "snapshots" / p.build_id / "context")
    live = plan(profile="isolated", snapshot=False)
    ctx = [m for m in live.mounts() if m.target == "/context"]
    assert ctx[0].source == str(HELLO) and not ctx[0].chown  # never chown a user's directory


def test_a_snapshot_is_made_only_when_the_builder_could_not_read_the_context(data, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    ctx.chmod(0o755)
    (ctx / "Containerfile").write_text("FROM scratch\n")
    (ctx / "sub").mkdir()
    (ctx / "sub" / "f").write_text("x")
    assert plan(ctx, profile="isolated").context_snapshot is None  # all readable by others
    for private, mode in ((ctx / "sub" / "f", 0o600), (ctx / "sub", 0o700), (ctx, 0o700)):
        private.chmod(mode)
        p = plan(ctx, profile="isolated")
        assert p.context_snapshot == data.resolve() / "snapshots" / p.build_id
        assert plan(ctx, profile="host-ro").context_snapshot is None  # the host's root reads it
        private.chmod(0o755 if private.is_dir() else 0o644)
    elsewhere = tmp_path / "Containerfile.private"
    elsewhere.write_text("FROM scratch\n")
    elsewhere.chmod(0o600)
    assert plan(ctx, profile="isolated", containerfile=elsewhere).context_snapshot is not None
    (ctx / "link").symlink_to("/root")  # a link is not followed, whatever it points at
    assert plan(ctx, profile="isolated").context_snapshot is None


@pytest.mark.parametrize(("context", "message"), [
    ("/", "build context '/' is the whole filesystem; pass the directory that holds what the "
          "build needs"),
    ("/proc/self", "is inside /proc (kernel interfaces and devices); pass a directory of files"),
])
def test_contexts_that_are_the_machine_are_refused(data, context, message):
    with pytest.raises(PlanError) as caught:
        plan(Path(context))
    assert message in str(caught.value)


def test_a_context_holding_or_inside_the_data_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    with pytest.raises(PlanError) as caught:
        plan(tmp_path)
    assert str(caught.value) == (
        f"build context {str(tmp_path)!r} holds buildcage's data directory "
        f"{tmp_path}/xdg/buildcage (image stores, snapshots); pass the directory that holds only "
        "what the build needs")
    inside = tmp_path / "xdg" / "buildcage" / "stores"
    inside.mkdir(parents=True)
    (inside / "Containerfile").write_text("FROM scratch\n")
    with pytest.raises(PlanError, match="is inside buildcage's data directory"):
        plan(inside)


def test_cli_bad_project_exits_2_with_the_message(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tui", "plan", "examples/hello", "--project", "../../x"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path)})
    assert out.returncode == 2
    assert out.stderr == f"buildcage: error: project name '../../x' is not allowed: {RULE}\n"


@pytest.mark.parametrize("dirname", ["tmp5mcuxw6_", "buildcage-private-a_b", "x..y", "_.-", "A B"])
def test_default_tags_of_odd_directory_names_are_valid_references(data, tmp_path, dirname):
    ctx = tmp_path / dirname
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\n")
    assert plan(ctx).tag.startswith("localhost/buildcage/")


def test_extra_stores_are_mounted_where_their_links_lead(data, tmp_path):
    real = tmp_path / "real-store"
    real.mkdir()
    (tmp_path / "store-link").symlink_to(real)
    config = Config(profiles={"withextra": {"base": "host-ro",
                                            "extra_stores": [str(tmp_path / "store-link")]}})
    p = make_plan(HELLO, config=config, profile="withextra")
    assert p.profile.extra_stores == (str(real),)
    assert [m.source for m in p.mounts() if m.target == "/var/lib/shared-1"] == [str(real)]


def test_the_pod_mounts_an_outside_containerfile_as_a_file(data, tmp_path):
    from tui.engine.renderings import kube_pod

    cf = tmp_path / "Build.file"
    cf.write_text("FROM scratch\n")
    pod = kube_pod(plan(containerfile=cf, snapshot=False, profile="project"))
    kinds = {v["hostPath"]["path"]: v["hostPath"]["type"] for v in pod["spec"]["volumes"]
             if "hostPath" in v}
    assert kinds[str(cf)] == "File" and kinds[str(HELLO)] == "Directory"


def test_links_planted_in_the_data_directory_are_never_written_through(data, tmp_path):
    from tui.engine.context import make_snapshot

    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    data.mkdir(parents=True)
    (data / "snapshots").symlink_to(victim)
    p = plan(snapshot=True)
    with pytest.raises(ValueError) as caught:
        make_snapshot(p)
    assert str(caught.value) == (
        f"{data.resolve()}/snapshots/{p.build_id} resolves to {victim}/{p.build_id}: buildcage "
        f"writes only to real directories under {data.resolve()}; remove the symlink")
    assert list(victim.iterdir()) == [] and victim.stat().st_mode & 0o777 == 0o755
    (data / "snapshots").unlink()
    (data / "conf").symlink_to(victim)
    with pytest.raises(ValueError, match="remove the symlink"):
        write_plan_files(p)
    assert list(victim.iterdir()) == []


def test_a_printed_plan_mounts_the_context_itself_and_never_chowns_it(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir(mode=0o700)
    (ctx / "Containerfile").write_text("FROM scratch\n")
    out = subprocess.run(
        [sys.executable, "-m", "tui", "plan", str(ctx), "--profile", "isolated"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert out.returncode == 0, out.stderr
    assert f"--volume={ctx}:/context:ro " in out.stdout.replace("\\\n", " ")
    assert "snapshots" not in out.stdout and ",U" not in out.stdout
    assert not (tmp_path / "xdg" / "buildcage" / "snapshots").exists()
