"""The headless CLI against real podman: JSON events, cache hits, and the plan's renderings
(the pasted `podman run` line and the Kubernetes manifest) building the same image."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time

import pytest
from podman_helpers import AUTHFILE, EXAMPLES, ROOT


@pytest.fixture(autouse=True)
def _real_host(provisioned, data_home):
    """Provisioned host; stores and history in this session's data directory (via XDG)."""


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=check, timeout=600)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_build_json_streams_events_then_reports_cache_hits(run_id):
    args = ["build", str(EXAMPLES / "multistage"), "--profile", "host-ro", "--json",
            "--project", f"json-{run_id}"]
    cold = cli(*args)
    assert cold.returncode == 0, cold.stderr
    cold_events = events(cold.stdout)
    assert all("event" in e and "time" in e for e in cold_events)
    kinds = [e["event"] for e in cold_events]
    assert kinds[0] == "build_started" and kinds[-1] == "done"
    # Step events arrive as the build runs, interleaved with its output, not in a block at the end.
    assert kinds.index("step_started") < kinds.index("image_built")
    done = cold_events[-1]
    assert set(done) >= {"status", "image_id", "duration_s", "steps_total", "cache_hits", "pushed"}
    assert done["status"] == "succeeded" and done["steps_total"] == 12

    warm = events(cli(*args, check=True).stdout)
    steps = [e for e in warm if e["event"] == "step_started"]
    cacheable = [s for s in steps if not s["instruction"].startswith("FROM")]
    hits = {(e["stage"], e["step"]) for e in warm if e["event"] == "cache_hit"}
    assert hits == {(s["stage"], s["step"]) for s in cacheable}
    assert warm[-1]["cache_hits"] == len(cacheable) == 10


def test_broken_exits_nonzero_naming_the_step():
    out = cli("build", str(EXAMPLES / "broken"), "--json")
    assert out.returncode == 1
    failed = [e for e in events(out.stdout) if e["event"] == "failed"]
    assert [f["step"] for f in failed] == ['RUN echo "about to fail" && exit 3']
    assert events(out.stdout)[-1]["status"] == "failed"


def test_bad_input_is_a_clear_message():
    missing = cli("build", "no/such/dir")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad_tag = cli("build", str(EXAMPLES / "hello"), "--tag", "Bad:tag")
    assert "lowercase" in bad_tag.stderr
    host_rw = cli("build", str(EXAMPLES / "hello"), "--profile", "host-rw")
    assert host_rw.returncode == 2 and "--allow-host-rw" in host_rw.stderr
    unknown = cli("build", str(EXAMPLES / "hello"), "--profile", "nope")
    assert "no profile named 'nope'" in unknown.stderr


def test_pasted_podman_run_builds_the_same_image(run_id):
    project = ["--profile", "project", "--project", f"paste-{run_id}"]
    built = events(cli("build", str(EXAMPLES / "hello"), "--json", *project, check=True).stdout)
    image_id = built[-1]["image_id"]
    command = cli("plan", str(EXAMPLES / "hello"), "--format", "podman", *project, check=True)
    pasted = subprocess.run(["bash", "-c", command.stdout], capture_output=True, text=True,
                            timeout=300)
    assert pasted.returncode == 0, pasted.stderr
    assert image_id in pasted.stdout.splitlines()


def test_kube_manifest_plays_with_podman(run_id, tmp_path):
    """Each phase's Pod, played in order as the manifest says (the build Pod with no network),
    builds the image."""
    project = ["--profile", "project", "--project", f"kube-{run_id}"]
    text = cli("plan", str(EXAMPLES / "hello"), "--format", "kube", *project, check=True).stdout
    pods = [doc for doc in text.split("---\n") if '\nkind: "Pod"' in "\n" + doc]
    assert [p.split("buildcage/phase: ")[1].split("\n")[0] for p in pods] == [
        '"fetch"', '"build"', '"publish"']
    assert "kind: \"NetworkPolicy\"" in text
    logs = ""
    for i, pod in enumerate(pods):
        manifest = tmp_path / f"pod-{i}.yaml"
        manifest.write_text(pod)
        secret = re.search(r'secretName: "([^"]+)"', pod)
        if secret:  # the trusted phases read the registry credentials from a Secret
            # podman 4.3 writes the value into the file as given: base64, which the phase decodes
            auth = base64.b64encode(AUTHFILE.read_bytes()).decode()
            (tmp_path / "secret.yaml").write_text(
                f'apiVersion: v1\nkind: Secret\nmetadata:\n  name: "{secret[1]}"\n'
                f'type: Opaque\ndata:\n  auth.json: "{auth}"\n')
            subprocess.run(["podman", "secret", "rm", secret[1]], capture_output=True)
            subprocess.run(["podman", "kube", "play", str(tmp_path / "secret.yaml")],
                           check=True, capture_output=True)
        name = next(line.split('"')[1] for line in pod.splitlines()
                    if line.strip().startswith("name: \"buildcage-"))
        network = ["--network", "none"] if "hostNetwork: false" in pod else []
        subprocess.run(["podman", "kube", "play", *network, str(manifest)], check=True,
                       capture_output=True)
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                state = subprocess.run(["podman", "inspect", "-f", "{{.State.Status}}",
                                        f"{name}-builder"], capture_output=True, text=True)
                if state.stdout.strip() == "exited":
                    break
                time.sleep(0.5)
            logs += subprocess.run(["podman", "logs", f"{name}-builder"], capture_output=True,
                                   text=True).stdout
        finally:
            subprocess.run(["podman", "kube", "down", str(manifest)], capture_output=True)
            if secret:
                subprocess.run(["podman", "secret", "rm", secret[1]], capture_output=True)
                # kube play copied the Secret into a volume of its name (see secret_copies.py):
                # left, doctor's orphan check (the next test) counts it against this plan.
                subprocess.run(["podman", "volume", "rm", "-f", secret[1]], capture_output=True)
    assert "Successfully tagged localhost/buildcage/hello:latest" in logs


def test_profiles_json_has_facts_for_every_profile():
    out = cli("profiles", "--json", check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) >= {"host-ro", "isolated", "project", "host-rw"}
    assert rows["host-rw"]["facts"]["host_store"] == "read-write"
    assert rows["host-ro"]["facts"]["host_store"] == "read-only"
    assert rows["isolated"]["security"]["score"] > rows["host-rw"]["security"]["score"]
    assert all(r["facts"]["engine_sockets"] == [] for r in rows.values())


def test_doctor_passes_on_a_provisioned_machine():
    out = cli("doctor")
    assert out.returncode == 0, out.stdout
    assert "FAIL" not in out.stdout


def test_ctrl_c_cancels_and_leaves_nothing_behind(run_id):
    import signal

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    context = ROOT / "tests" / "data" / "contexts" / "slow"
    proc = subprocess.Popen([sys.executable, "-m", "tui", "build", str(context), "--json",
                             "--no-cache", "--profile", "isolated"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1].get("line") == "started":
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=60)
    seen += events(rest)
    assert proc.returncode == 130
    assert seen[-1]["event"] == "done" and seen[-1]["status"] == "canceled"
    build_id = next(e["build_id"] for e in seen if e["event"] == "build_started")
    names = subprocess.run(["podman", "ps", "-a", "--filter", f"label=buildcage.build={build_id}",
                            "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    volumes = subprocess.run(["podman", "volume", "ls", "--format", "{{.Name}}"],
                             capture_output=True, text=True).stdout
    assert names.strip() == ""
    assert f"buildcage-store-{build_id}" not in volumes


def test_unreachable_registry_is_refused_before_building():
    out = cli("build", str(EXAMPLES / "hello"), "--push", "127.0.0.1:5999/x/y:1", "--json")
    assert out.returncode == 2
    rows = events(out.stdout)
    assert [r["event"] for r in rows] == ["error", "done"]
    assert "cannot reach 127.0.0.1:5999" in rows[0]["message"]


def test_the_same_plan_runs_as_a_kubernetes_pod(run_id):
    """`--on kube` plays the plan's Pod manifest; the events are the same as a local build's."""
    args = ["build", str(EXAMPLES / "hello"), "--profile", "project", "--json",
            "--project", f"kube-run-{run_id}", "--push", f"127.0.0.1:5000/it/kube-hello:{run_id}"]
    out = cli(*args, "--on", "kube")
    assert out.returncode == 0, out.stderr + out.stdout[-2000:]
    rows = events(out.stdout)
    kinds = [r["event"] for r in rows]
    for kind in ("build_started", "step_started", "step_done", "image_built", "pushed", "done"):
        assert kind in kinds
    assert rows[-1]["status"] == "succeeded" and rows[-1]["steps_total"] == 4
    build_id = next(r["build_id"] for r in rows if r["event"] == "build_started")
    pods = subprocess.run(["podman", "pod", "ps", "-q", "--filter",
                           f"name={build_id}"], capture_output=True, text=True)
    assert pods.stdout.strip() == ""
    # podman kube play copies a Pod's Secret volume into a named volume of the Secret's name
    # (the registry credentials, in clear): it goes with the build, as the Secret does.
    for kind in ("volume", "secret"):
        left = subprocess.run(["podman", kind, "ls", "--format", "{{.Name}}"],
                              capture_output=True, text=True, check=True).stdout.split()
        assert [n for n in left if build_id in n] == [], kind


def test_a_pod_podman_cannot_start_is_a_clear_failure_and_leaves_no_pod():
    # podman 4.3 cannot start a user-namespaced Pod on the host network (see README).
    out = cli("build", str(EXAMPLES / "hello"), "--profile", "isolated", "--json", "--on", "kube")
    rows = events(out.stdout)
    assert out.returncode == 1
    failed = [r for r in rows if r["event"] == "failed"]
    assert failed and "podman kube play refused the Pod" in failed[0]["message"]
    pods = subprocess.run(["podman", "pod", "ps", "-q"], capture_output=True, text=True)
    assert pods.stdout.strip() == ""


def test_doctor_sees_a_service_that_answers_but_cannot_start_containers(tmp_path):
    """A podman service started from a directory that is then deleted answers pings but fails
    every container start; doctor must say so (a second service, on its own socket)."""
    workdir = tmp_path / "gone"
    workdir.mkdir()
    socket_path = tmp_path / "broken.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0",
                                f"unix://{socket_path}"], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while not socket_path.exists():
            assert time.time() < deadline, "second podman service did not start"
            time.sleep(0.1)
        workdir.rmdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "BUILDCAGE_PODMAN_URL": f"unix://{socket_path}"}
        out = subprocess.run([sys.executable, "-m", "tui", "doctor"], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=120)
        assert out.returncode == 1
        line = next(line for line in out.stdout.splitlines() if "container start" in line)
        assert line.startswith("FAIL")
    finally:
        service.terminate()
        service.wait(10)
