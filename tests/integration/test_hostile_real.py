"""A hostile context, in every built-in profile, against real podman: a Containerfile's RUN
steps cannot reach services on the host's loopback, cannot forge the facts buildcage reports,
and cannot read secrets from anywhere but their own secret mount; build argument values stay
off every command line and out of every container's inspect."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from podman_helpers import REGISTRY, Background, Recorder, build, registry_digest

from tui.engine.events import BuildWarning, Failed, ImageBuilt, ImageInfo, LogLine, Pushed
from tui.engine.planner import parse_secrets
from tui.engine.runner import BuildRunner
from tui.engine.session_builder import read_records

PROFILES = ["host-ro", "isolated", "project", "host-rw"]
RUNNERS = [*PROFILES, "host-ro+session"]
"""Each profile one-shot, and host-ro in a session builder (tui.engine.session_runner)."""
BASE = f"{REGISTRY}/buildcage/busybox:latest"


def context(tmp_path: Path, containerfile: str) -> Path:
    """A context the user-namespaced builder can read (private contexts have their own test)."""
    tmp_path.chmod(0o755)
    (tmp_path / "Containerfile").write_text(containerfile)
    (tmp_path / "Containerfile").chmod(0o644)
    return tmp_path


class Listener:
    """A TCP service on the host's loopback that records whether anyone connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def lines(rec: Recorder) -> list[str]:
    return [e.line for e in rec.of(LogLine)]


@pytest.mark.parametrize("runner", RUNNERS)
def test_run_steps_cannot_reach_the_hosts_loopback_yet_pull_and_push_work(
        engine, run_id, tmp_path, runner):
    profile, _, session = runner.partition("+")
    listener = Listener()
    try:
        ctx = context(tmp_path, f"""FROM {BASE}
RUN for port in 5000 {listener.port}; do \\
      if nc -w 2 127.0.0.1 $port </dev/null; then echo "REACHED $port"; \\
      else echo "BLOCKED $port"; fi; done
""")
        repo = f"it/hostile-net-{profile}"
        rec = build(engine, ctx, profile=profile, confirmed=True, no_cache=True,
                    push=f"{REGISTRY}/{repo}:{run_id}", session=bool(session))
    finally:
        listener.close()
    assert rec.done.status == "succeeded", rec.of(Failed)
    out = lines(rec)
    assert "BLOCKED 5000" in out and f"BLOCKED {listener.port}" in out
    assert not [line for line in out if line.startswith("REACHED")]
    assert listener.connections == 0
    # The trusted publish phase still pushed, and the digest is the registry's own.
    assert rec.of(Pushed)[0].digest == registry_digest(repo, run_id)
    assert engine.end_sessions() == []


FORGED_ID = "b" * 64


@pytest.mark.parametrize("runner", RUNNERS)
def test_build_output_cannot_forge_facts(engine, tmp_path, runner):
    profile, _, session = runner.partition("+")
    ctx = context(tmp_path, f"""FROM {BASE}
RUN echo "buildcage: push {REGISTRY}/evil:1"; \\
    echo "buildcage: pushed {REGISTRY}/evil:1 sha256:{'a' * 64}"; \\
    echo 'buildcage: manifest {{"layers": [{{"size": 1}}, {{"size": 2}}]}}'; \\
    echo "COMMIT evil"; echo "--> {FORGED_ID[:11]}"; echo "{FORGED_ID}"; \\
    echo 'Error: building at STEP "RUN evil": exit status 9'
""")
    rec = build(engine, ctx, profile=profile, confirmed=True, no_cache=True,
                session=bool(session))
    assert rec.done.status == "succeeded", rec.of(Failed)
    assert rec.of(Failed) == [], "a printed error line is no failure while the build succeeds"
    assert rec.of(Pushed) == [] and rec.done.pushed == ""
    built = rec.of(ImageBuilt)
    assert len(built) == 1 and built[0].image_id == rec.done.image_id != FORGED_ID
    assert [i.layers for i in rec.of(ImageInfo)] != [(1, 2)]
    assert len(rec.of(ImageInfo)) == 1 and len(rec.of(ImageInfo)[0].layers) == 2
    assert engine.end_sessions() == []
    if profile == "host-rw":  # the image is in the host's store: compare with podman's view
        tag = f"localhost/buildcage/{ctx.name.lower()}:latest"
        real = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", tag],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert real == rec.done.image_id


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


SECRET = "hunter2-correct-horse"
ARG_VALUE = "argvalue-staple-battery"


@pytest.mark.parametrize("runner", RUNNERS)
def test_secrets_and_build_args_stay_out_of_logs_inspect_and_ps(
        engine, tmp_path, monkeypatch, runner):
    profile, _, session = runner.partition("+")
    secret = tmp_path / "token.txt"
    secret.write_text(SECRET)
    (tmp_path / "ctx").mkdir()
    ctx = context(tmp_path / "ctx", f"""FROM {BASE}
ARG API_TOKEN
RUN --mount=type=secret,id=tok,target=/tok \\
    test "$(sha256sum < /tok | cut -c1-64)" = "{sha(SECRET)}" && echo SECRET-OK; \\
    test "$(printf %s "$API_TOKEN" | sha256sum | cut -c1-64)" = "{sha(ARG_VALUE)}" \\
      && echo ARG-OK; echo started; sleep 2
""")
    inspected: list[str] = []
    original = BuildRunner._start_builder  # noqa: SLF001 - wrapped to reach the builder it starts

    def recording(self, spec):
        container = original(self, spec)
        if container is not None:
            container.reload()
            inspected.append(json.dumps(container.attrs))
        return container

    monkeypatch.setattr(BuildRunner, "_start_builder", recording)
    plan = engine.plan(ctx, profile=profile, confirmed=True, no_cache=True,
                       build_args=(("API_TOKEN", ARG_VALUE),),
                       secrets=parse_secrets([f"id=tok,src={secret}"]))
    running = Background(engine, plan, session=bool(session))
    running.wait_for_line("started")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    done = running.join()
    assert done.status == "succeeded", running.rec.of(Failed)
    out = lines(running.rec)
    assert "SECRET-OK" in out and "ARG-OK" in out
    for text in ["\n".join(out), ps, *inspected]:
        assert SECRET not in text and ARG_VALUE not in text
    warnings = [w.message for w in running.rec.of(BuildWarning)]
    assert any("API_TOKEN looks like a secret" in w and "--secret" in w for w in warnings)
    record = engine.history.recent(1)[0]
    assert SECRET not in json.dumps(record.__dict__, default=str)
    names = subprocess.run(["podman", "secret", "ls", "--format", "{{.Name}}"],
                           capture_output=True, text=True, check=True).stdout
    assert plan.build_id not in names, "the build's podman secrets are removed"
    if session:  # a session's inboxes (on /dev/shm) are emptied when the build ends
        for record in read_records(plan.data_dir):
            assert [f for f in Path(record.inbox).rglob("*") if f.is_file()] == []
    assert engine.end_sessions() == []
