"""The local registry provisioning starts takes no upload, overwrite or delete from anybody
without credentials, builds still pull and push through the trusted phases' auth file, and
doctor tells an open registry from a closed one."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from podman_helpers import EXAMPLES, REGISTRY, build, registry_digest

from tui.engine.registry import anonymous_write_probe

ROOT = Path(__file__).resolve().parents[2]


def status(method: str, url: str) -> int:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError:  # nobody listening (yet)
        return 0


def test_the_provisioned_registry_refuses_anonymous_writes_and_deletes(provisioned):
    assert anonymous_write_probe(REGISTRY) == "closed"
    base = f"http://{REGISTRY}/v2/buildcage/busybox"
    assert status("POST", f"{base}/blobs/uploads/") == 401
    assert status("DELETE", f"{base}/manifests/sha256:{'0' * 64}") == 401
    assert status("PUT", f"{base}/manifests/latest") == 401


def test_builds_still_pull_and_push_with_the_auth_file(engine, run_id):
    repo = f"it/auth-{run_id}"
    rec = build(engine, EXAMPLES / "hello", profile="isolated", push=f"{REGISTRY}/{repo}:1")
    assert rec.done.status == "succeeded"
    assert rec.done.pushed.endswith(registry_digest(repo, "1"))


@pytest.fixture
def open_registry(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {tmp_path / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while status("GET", f"http://127.0.0.1:{port}/v2/") != 200:
            assert time.time() < deadline, "test registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_an_open_registry_is_told_apart(open_registry):
    assert anonymous_write_probe(open_registry) == "open"
    # The probe cancelled its upload: the registry holds no repository for it.
    assert status("GET", f"http://{open_registry}/v2/_catalog") == 200


def test_doctor_reports_the_registry_closed_to_anonymous_writes(provisioned):
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "buildcage"), "doctor"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    line = next(x for x in out.stdout.splitlines() if "registry writes" in x)
    assert line.startswith("ok") and "uploads need credentials" in line
