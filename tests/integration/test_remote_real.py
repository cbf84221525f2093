"""A podman service on another host (issue 7, item 8), for real: a second podman service on this
machine in its own mount namespace, where this machine's temporary files, home, checkout and
buildcage's data directory are hidden (empty tmpfs over them), reached over TCP on loopback.
Whatever the builder needs from here must reach it through the API (copies in and out), as it
would over ``ssh://``; a bind mount of a local path would fail there."""

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
from tui.engine.events import BuildStarted, Failed, ImageBuilt, LogLine, Pushed
from tui.engine.history import History
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


@pytest.fixture(scope="module")
def remote_url(provisioned: None, data_home: Path) -> Iterator[str]:
    url = f"tcp://127.0.0.1:{_free_port()}"
    mounts = " && ".join(f"mount -t tmpfs buildcage-hidden {h}" for h in _hidden(data_home))
    service = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "slave", "sh", "-c",
         f"{mounts} && exec podman system service --time=0 {url}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        client = PodmanClient(base_url=url)
        deadline = time.time() + 60
        while True:
            with contextlib.suppress(Exception):  # not listening yet
                if client.ping():
                    break
            assert service.poll() is None, "the remote podman service did not start"
            assert time.time() < deadline, "the remote podman service never answered"
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(30)


@pytest.fixture(scope="module")
def remote_engine(remote_url: str, data_home: Path) -> Engine:
    config = dataclasses.replace(load_config(), podman_url=remote_url)
    return Engine(config, History(data_home / "remote-history.sqlite3"))


def test_the_remote_service_really_cannot_see_this_machines_files(remote_url, tmp_path):
    """The premise of every test here: a bind mount of a local path fails over there."""
    (tmp_path / "here").write_text("local")
    client = PodmanClient(base_url=remote_url)
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


@pytest.mark.parametrize("profile", ["isolated", "host-ro", "project"])
def test_a_private_context_builds_and_pushes_on_a_remote_service(
        remote_engine, remote_url, run_id, tmp_path, profile):
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
    assert leftovers(PodmanClient(base_url=remote_url), build_id) == []


def test_a_remote_project_store_keeps_its_layers_in_a_volume_there(
        remote_engine, remote_url, run_id, tmp_path):
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
    client = PodmanClient(base_url=remote_url)
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
