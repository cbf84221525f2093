"""A podman service on another host (issue 7, item 8), for real: a second podman service on this
machine in its own mount namespace, where this machine's temporary files, home, checkout and
buildcage's data directory are hidden (empty tmpfs over them), reached over ``ssh://`` through a
test sshd on loopback. Whatever the builder needs from here must reach it through the API
(copies in and out); a bind mount of a local path fails there."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman import PodmanClient
from podman.errors import APIError
from podman_helpers import REGISTRY, ROOT, Recorder, registry_digest

from tui.engine.config import load_config
from tui.engine.events import (
    BuildStarted,
    BuildWarning,
    CacheExported,
    Failed,
    ImageBuilt,
    LogLine,
    Pushed,
)
from tui.engine.history import History
from tui.engine.podman_api import PodmanUnavailable, connect
from tui.engine.request import BuildRequest
from tui.engine.session import Engine
from tui.engine.stores import leftovers

BASE = f"{REGISTRY}/buildcage/busybox:latest"


def _hidden(data_home: Path) -> list[str]:
    """Directories the remote service must not see: parents first, none under another."""
    wanted = ["/tmp", "/root", "/work", str(ROOT), str(data_home), tempfile.gettempdir()]
    out: list[str] = []
    for path in sorted({os.path.realpath(p) for p in wanted}, key=len):
        if os.path.isdir(path) and path != "/" and not any(
                path == h or path.startswith(h + "/") for h in out):
            out.append(path)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(client: PodmanClient, process: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 60
    while True:
        with contextlib.suppress(Exception):  # not listening yet
            if client.ping():
                return
        assert process.poll() is None, f"{what} did not start"
        assert time.time() < deadline, f"{what} never answered"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def remote_socket(provisioned: None, data_home: Path) -> Iterator[str]:
    """A podman service that cannot see this machine's files, on a unix socket under /run."""
    folder = Path(tempfile.mkdtemp(prefix="buildcage-it-remote-", dir="/run"))
    sock = folder / "podman.sock"
    mounts = " && ".join(f"mount -t tmpfs buildcage-hidden {h}" for h in _hidden(data_home))
    service = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "slave", "sh", "-c",
         f"{mounts} && exec podman system service --time=0 unix://{sock}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = PodmanClient(base_url=f"unix://{sock}")
    try:
        _wait(client, service, "the remote podman service")
        before = {v.name for v in client.volumes.list()}
        yield str(sock)
        # The project stores these tests made there are kept by design (never collected):
        # this test's own go with it. (The service shares this machine's volumes.)
        for volume in client.volumes.list(filters={"label": "buildcage.store=project"}):
            if volume.name not in before and str(
                    volume.attrs.get("Labels", {}).get("buildcage.project", "")
                    ).startswith("remote-"):
                volume.remove(force=True)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(30)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


@dataclasses.dataclass
class Ssh:
    port: int
    identity: Path
    known_hosts: Path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ssh]:
    """An sshd of this test on loopback, root by key only; its host key known to the client
    through a known_hosts file of this test (the user's own is never touched)."""
    home = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)],
                       check=True)
    (home / "authorized_keys").write_text((home / "id.pub").read_text())
    port = _free_port()
    (home / "known_hosts").write_text(f"[127.0.0.1]:{port} {(home / 'host_key.pub').read_text()}")
    (home / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {home / 'host_key'}
AuthorizedKeysFile {home / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowStreamLocalForwarding yes
PidFile {home / 'sshd.pid'}
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    daemon = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(home / "sshd_config")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert daemon.poll() is None and time.time() < deadline, "sshd did not start"
            time.sleep(0.1)
        yield Ssh(port, home / "id", home / "known_hosts")
    finally:
        daemon.terminate()
        daemon.wait(10)


@pytest.fixture(scope="module")
def remote_url(remote_socket: str, sshd: Ssh) -> str:
    return f"ssh://root@127.0.0.1:{sshd.port}{remote_socket}"


@pytest.fixture(scope="module")
def remote_engine(remote_url: str, sshd: Ssh, data_home: Path) -> Engine:
    config = dataclasses.replace(load_config(), podman_url=remote_url,
                                 podman_identity=str(sshd.identity),
                                 podman_known_hosts=str(sshd.known_hosts))
    return Engine(config, History(data_home / "remote-history.sqlite3"))


def test_an_unknown_host_key_is_refused_with_the_way_to_trust_it(remote_url, sshd, tmp_path):
    """No trust on first use: a host whose key is not known gets no connection (a man in the
    middle would get the context, the secrets and the registry credentials)."""
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(PodmanUnavailable, match="host key must be known"):
        connect(remote_url, str(sshd.identity), str(tmp_path / "known_hosts"))


def test_the_remote_service_really_cannot_see_this_machines_files(remote_socket, tmp_path):
    """The premise of every test here: a bind mount of a local path fails over there."""
    (tmp_path / "here").write_text("local")
    client = PodmanClient(base_url=f"unix://{remote_socket}")
    with pytest.raises(APIError, match="no such file or directory"):
        client.containers.create(
            image="localhost/buildcage/builder:latest", command=["cat", "/mnt/here"],
            mounts=[{"type": "bind", "source": str(tmp_path), "target": "/mnt"}],
            network_mode="none")


def _private_context(tmp_path: Path, marker: str) -> tuple[Path, Path]:
    """A 0700 context with a 0600 file, and a 0600 Containerfile kept outside it."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(mode=0o700)
    (ctx / "secret.txt").write_text(marker + "\n")
    (ctx / "secret.txt").chmod(0o600)
    outside = tmp_path / "files"
    outside.mkdir(mode=0o700)
    containerfile = outside / "Containerfile"
    containerfile.write_text(f"FROM {BASE}\nCOPY secret.txt /secret.txt\n"
                             "RUN cat /secret.txt && echo built > /made\n")
    containerfile.chmod(0o600)
    return ctx, containerfile


def _build(engine: Engine, request: BuildRequest) -> Recorder:
    rec = Recorder()
    prepared = engine.prepare(request, confirmed=True)
    engine.start(prepared, rec).run()
    return rec


# A remote project store: test_a_remote_project_store_keeps_its_layers_in_a_volume_there.
@pytest.mark.parametrize("profile", ["isolated", "host-ro"])
def test_a_private_context_builds_and_pushes_on_a_remote_service(
        remote_engine, remote_socket, run_id, tmp_path, profile):
    marker = f"remote-{profile}-{run_id}"
    ctx, containerfile = _private_context(tmp_path, marker)
    repo = f"it/remote-{profile}"
    rec = _build(remote_engine, BuildRequest(
        ctx, profile=profile, containerfile=str(containerfile), no_cache=True,
        project=f"remote-{run_id}", push=f"{REGISTRY}/{repo}:{run_id}"))
    assert rec.done.status == "succeeded", rec.of(Failed)
    assert marker in [e.line for e in rec.of(LogLine)]  # the context's 0600 file was read
    image_id = rec.of(ImageBuilt)[0].image_id
    assert image_id and rec.done.image_id == image_id  # facts copied back out of the builder
    pushed = rec.of(Pushed)
    assert pushed and pushed[0].digest == registry_digest(repo, run_id)
    build_id = rec.of(BuildStarted)[0].build_id
    assert leftovers(PodmanClient(base_url=f"unix://{remote_socket}"), build_id) == []
    # The local registry is this machine's loopback: no registry cache on another host's
    # service, and the build says so.
    warned = [w.message for w in rec.of(BuildWarning) if "registry cache off" in w.message]
    assert len(warned) == (1 if profile == "isolated" else 0), rec.of(BuildWarning)
    assert rec.of(CacheExported) == []


def test_a_remote_project_store_keeps_its_layers_in_a_volume_there(
        remote_engine, remote_socket, run_id, tmp_path):
    marker = f"remote-cache-{run_id}"
    ctx, containerfile = _private_context(tmp_path, marker)
    request = BuildRequest(ctx, profile="project", containerfile=str(containerfile),
                           project=f"remote-cache-{run_id}")
    first = _build(remote_engine, request)
    assert first.done.status == "succeeded", first.of(Failed)
    again = _build(remote_engine, request)
    assert again.done.status == "succeeded", again.of(Failed)
    assert again.done.cache_hits >= 2 and again.done.image_id == first.done.image_id
    plan = remote_engine.plan_for(request, confirmed=True)
    client = PodmanClient(base_url=f"unix://{remote_socket}")
    volume = client.volumes.get(plan.project_volume)
    try:
        assert volume.attrs["Labels"]["buildcage.project"] == f"remote-cache-{run_id}"
    finally:
        volume.remove(force=True)


def test_an_oci_layout_is_copied_back_from_a_remote_builder(remote_engine, run_id, tmp_path):
    ctx, containerfile = _private_context(tmp_path, f"remote-oci-{run_id}")
    out = tmp_path / "layouts" / "remote"
    rec = _build(remote_engine, BuildRequest(ctx, profile="isolated",
                                             containerfile=str(containerfile),
                                             push=f"oci:{out}:v1"))
    assert rec.done.status == "succeeded", rec.of(Failed)
    index = json.loads((out / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert tags == ["v1"]
    digest = index["manifests"][0]["digest"]
    assert rec.of(Pushed)[0].digest == digest
    assert (out / "blobs" / "sha256" / digest.split(":")[1]).is_file()
    # A second tag in the same layout keeps the first (the layout was copied in, then out).
    again = _build(remote_engine, BuildRequest(ctx, profile="isolated",
                                               containerfile=str(containerfile),
                                               push=f"oci:{out}:v2"))
    assert again.done.status == "succeeded", again.of(Failed)
    index = json.loads((out / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert sorted(tags) == ["v1", "v2"]


def test_load_puts_the_image_into_the_remote_hosts_podman(
        remote_engine, remote_socket, run_id, tmp_path):
    """--load on a remote service: the archive comes back through the API and is loaded
    into that service's store (the podman host's), where `podman run` finds it."""
    ctx, containerfile = _private_context(tmp_path, f"remote-load-{run_id}")
    tag = f"localhost/it/remote-load:{run_id}"
    rec = _build(remote_engine, BuildRequest(ctx, profile="isolated", tag=tag,
                                             containerfile=str(containerfile), load=True))
    assert rec.done.status == "succeeded", rec.of(Failed)
    client = PodmanClient(base_url=f"unix://{remote_socket}")
    image = client.images.get(tag)
    try:
        assert image.id.removeprefix("sha256:").startswith(rec.done.image_id[:12])
        run = subprocess.run(["podman", "--url", f"unix://{remote_socket}", "run", "--rm",
                              "--network", "none", tag, "cat", "/made"],
                             capture_output=True, text=True, timeout=120)
        assert run.stdout == "built\n", run.stderr
    finally:
        client.images.remove(image.id, force=True)
