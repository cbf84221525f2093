"""A podman service on another host (issue 7, item 8): the builder gets copies of this machine's
files, never bind mounts of them; what cannot be served there is refused with a reason."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.facts import facts_from_inspect
from tui.engine.plan import CONTEXT_DIR, FACTS_DIR, BuildPlan
from tui.engine.planner import PlanError
from tui.engine.profiles import HOST_STORE
from tui.engine.renderings import create_kwargs, podman_run
from tui.engine.request import BuildRequest
from tui.engine.session import Engine
from tui.engine.summary import security_rating
from tui.engine.transfer import TransferError, extract_into, write_archive

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
REMOTE = "ssh://root@build-host:22/run/podman/podman.sock"
SERVICE_PATHS = ("/sys", "/dev/fuse", HOST_STORE)
"""The only host paths a remote builder may name: the service host's own."""


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def remote_engine(url: str = REMOTE, profiles: dict | None = None) -> Engine:
    return Engine(Config(podman_url=url, profiles=profiles or {}), reach=lambda *_: (True, "ok"))


def prepared(profile: str, **options) -> BuildPlan:
    request = BuildRequest(HELLO, profile=profile, **options)
    return remote_engine().prepare(request, confirmed=True).plan


@pytest.mark.parametrize("url", [REMOTE, "tcp://127.0.0.1:8080", "http://127.0.0.1:8080"])
def test_a_url_other_than_a_unix_socket_is_a_remote_service(url):
    assert remote_engine(url).remote
    assert not remote_engine("unix:///run/podman/podman.sock").remote


@pytest.mark.parametrize("profile", ["isolated", "host-ro", "project"])
def test_a_remote_builder_binds_no_path_of_this_machine(profile):
    """Every phase: the context, Containerfile, configuration and facts are copies (``copy``,
    ``sync``); a bind or device names only the service host's own system paths."""
    plan = prepared(profile, push="127.0.0.1:5000/x/y:1")
    assert plan.remote and plan.context_snapshot is not None
    for phase in plan.phases():
        for m in phase.mounts:
            if m.kind in ("bind", "device"):
                assert m.source in SERVICE_PATHS, (phase.name, m)
        kwargs = create_kwargs(plan, phase)
        assert all(b["source"] in SERVICE_PATHS for b in kwargs["mounts"]), kwargs["mounts"]
    build = {m.target: m for m in plan.phase_mounts("build")}
    assert build[CONTEXT_DIR].kind == "copy"
    assert build[CONTEXT_DIR].source == str(plan.snapshot_context_dir)
    publish = {m.target: m for m in plan.phase_mounts("publish")}
    assert publish[FACTS_DIR].kind == "sync" and publish[FACTS_DIR].source == str(plan.facts_dir)


def test_a_remote_project_store_is_a_kept_volume_no_collector_takes():
    plan = prepared("project")
    store = next(m for m in plan.phase_mounts("build") if m.target == "/var/lib/containers")
    assert store.kind == "volume" and store.source == plan.project_volume
    assert plan.store_dir is None  # nothing under this machine's data directory
    labels = plan.project_volume_labels()
    assert "buildcage.build" not in labels and "buildcage.owner" not in labels
    other = prepared("project", project="other")
    assert other.project_volume != plan.project_volume


def test_a_printed_command_of_a_remote_build_names_real_paths():
    """What is printed is run later where the files are: binds, no copies."""
    plan = prepared("isolated").without_snapshot()
    assert not plan.remote
    assert f"{HELLO}:{CONTEXT_DIR}:ro" in podman_run(plan)


def test_host_rw_is_refused_on_a_remote_service_with_the_reason():
    with pytest.raises(PlanError, match="another host"):
        prepared("host-rw")


def test_extra_stores_are_refused_on_a_remote_service(tmp_path):
    store = tmp_path / "team-store"
    store.mkdir()
    engine = remote_engine(profiles={"team": {"base": "host-ro",
                                              "extra_stores": [str(store)]}})
    with pytest.raises(PlanError, match="cannot check from this machine"):
        engine.prepare(BuildRequest(HELLO, profile="team"))


def test_kube_runs_are_refused_on_a_remote_service():
    with pytest.raises(PlanError, match="--on kube"):
        remote_engine().prepare(BuildRequest(HELLO, on="kube"))


def test_remote_facts_take_sources_as_named():
    """A remote mount of /run reaches the service host's sockets; its host store mounted
    read-only is read-only access: by name, since nothing there can be looked into from here."""
    attrs = {"HostConfig": {}, "Mounts": [
        {"Source": "/run", "Destination": "/r", "RW": False, "Type": "bind"},
        {"Source": HOST_STORE, "Destination": "/var/lib/shared", "RW": False, "Type": "bind"},
        {"Source": f"{HOST_STORE}/volumes/v/_data", "Destination": "/s", "RW": True,
         "Type": "volume"},
    ]}
    facts = facts_from_inspect(attrs, remote=True)
    assert facts.remote
    assert any("another host" in r for r in security_rating(facts).reasons)
    assert not any("another host" in r for r in security_rating(
        facts_from_inspect(attrs)).reasons)
    assert "/run/podman/podman.sock as /r/podman/podman.sock" in facts.engine_sockets
    assert facts.host_store == "read-only" and facts.host_store_via == ("/var/lib/shared",)


def test_host_ro_on_a_remote_service_reads_that_hosts_store_through_overlays():
    """The service host's own store, named as paths there, as overlay volumes (which podman
    makes on its side from the API's ``overlay_volumes``), never this machine's; every phase
    and every container outside the phases takes its own lists and lock files first; the facts
    say read-only, by name."""
    plan = prepared("host-ro")
    kwargs = create_kwargs(plan, "build")
    assert kwargs["overlay_volumes"] == [
        {"source": f"{HOST_STORE}/{part}", "destination": f"/var/lib/shared/{part}",
         "options": []} for part in ("overlay", "overlay-images", "overlay-layers")]
    assert not [b for b in kwargs["mounts"] if b["source"].startswith(HOST_STORE)]
    for phase in plan.phases():
        assert "printf %064d 0 > /var/lib/shared/overlay-images/images.lock" in phase.command[2]
    assert plan.on_store(["buildah", "rm", "x"])[2].endswith("; exec buildah rm x")
    attrs = {"HostConfig": {}, "Mounts": [
        {"Source": "plan-volume", "Destination": "/var/lib/containers", "RW": True,
         "Type": "volume"}]}
    facts = facts_from_inspect(attrs, remote=True, overlay_volumes=kwargs["overlay_volumes"])
    assert facts.host_store == "read-only"
    assert facts.host_store_via == tuple(f"/var/lib/shared/{part}" for part in
                                         ("overlay", "overlay-images", "overlay-layers"))


# -- the copies themselves -------------------------------------------------------------------

def test_an_archive_holds_each_copy_at_its_target_owned_by_root(tmp_path):
    from tui.engine.plan import Mount

    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "private").write_text("p")
    os.chmod(ctx / "sub" / "private", 0o600)
    os.symlink("sub/private", ctx / "link")
    conf = tmp_path / "storage.conf"
    conf.write_text("[storage]\n")
    buf = io.BytesIO()
    write_archive([Mount(str(ctx), "/context", "copy"),
                   Mount(str(conf), "/etc/containers/storage.conf", "copy", file=True),
                   Mount(str(tmp_path / "facts"), "/buildcage/facts", "sync")], buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"context/sub/private", "context/link", "etc/containers/storage.conf",
            "buildcage", "buildcage/facts"} <= set(members)
    assert members["context/sub/private"].mode & 0o777 == 0o600
    assert members["context/link"].issym() and members["context/link"].linkname == "sub/private"
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def _tar(entries: list[tuple[str, bytes | None, str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_what_comes_back_merges_into_the_destination(tmp_path):
    dest = tmp_path / "oci"
    (dest / "blobs").mkdir(parents=True)
    (dest / "blobs" / "old").write_text("kept")
    (dest / "index.json").write_text("old")
    extract_into(_tar([("output", None, ""), ("output/index.json", b"new", ""),
                       ("output/blobs/new", b"b", "")]), dest, "output")
    assert (dest / "index.json").read_text() == "new"
    assert (dest / "blobs" / "old").read_text() == "kept"
    assert (dest / "blobs" / "new").read_text() == "b"
    assert [p.name for p in dest.iterdir() if p.name.startswith(".buildcage")] == []


@pytest.mark.parametrize("entries", [
    [("output", None, ""), ("output/../../evil", b"x", "")],
    [("/abs/evil", b"x", "")],
    [("output", None, ""), ("output/l", None, "/etc"), ("output/l/passwd", b"x", "")],
    [("output", None, ""), ("output/l", None, "../../.."), ("output/l/evil", b"x", "")],
])
def test_nothing_lands_outside_the_destination(tmp_path, entries):
    dest = tmp_path / "d" / "facts"
    dest.mkdir(parents=True)
    with pytest.raises((tarfile.TarError, TransferError)):
        extract_into(_tar(entries), dest, "output")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "d" / "evil").exists()
    assert list(dest.iterdir()) == []


def test_a_client_over_tcp_or_a_tunnel_is_remote_a_unix_socket_is_not():
    from podman import PodmanClient

    from tui.engine.podman_api import TUNNELS, is_remote

    local = PodmanClient(base_url="unix:///run/podman/podman.sock")
    assert not is_remote(local)
    assert is_remote(PodmanClient(base_url="tcp://127.0.0.1:8080"))
    TUNNELS[id(local)] = object()  # what connect() records for an ssh:// service
    try:
        assert is_remote(local)
    finally:
        del TUNNELS[id(local)]
