"""A secret-looking build argument's value never reaches buildcage's own records: two real
builds through the CLI with ``--build-arg TOKEN=...`` (the value changed between them, so the
second build's cache explanation is about it) and one that fails in a step, then every way
buildcage shows or keeps what a build did: ``build --json``, ``why`` (human and JSON),
``history --json``, ``layers --last --json`` and every file under the data directory
(history.sqlite3 and its key, generated configuration, kept layer reports, the record of the
failed build for ``buildcage debug``). The image itself does hold the values (Buildah records
build arguments in the image's history; the build warns about that), and so does the image
store the build wrote under the data directory (DATA/buildcage/stores): only buildcage's own
records are checked, every other file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from podman_helpers import ROOT

BASE = "127.0.0.1:5000/buildcage/busybox:latest"
VALUES = (b"hunter2", b"hunter3-second")


def test_a_secret_build_argument_is_in_no_record(provisioned, run_id: str,
                                                 tmp_path: Path) -> None:
    data = tmp_path / "xdg"  # this test's own data directory: everything in it is checked
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.chmod(tmp_path, 0o755)
    (ctx / "Containerfile").write_text(
        f'FROM {BASE}\nARG TOKEN\nARG GREETING=hi\nRUN test -n "$TOKEN" && echo "token set"\n'
        'RUN echo "$GREETING"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str(data)}

    printed: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=600)
        printed.append(out.stdout + out.stderr)
        for value in VALUES:
            assert value.decode() not in out.stdout + out.stderr, (args, value)
        return out

    project = f"secret-{run_id}"
    builds = [cli("build", str(ctx), "--profile", "host-ro", "--project", project,
                  "--build-arg", f"TOKEN={value.decode()}", "--build-arg", "GREETING=hello",
                  "--json") for value in VALUES]
    for out in builds:
        assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in builds[1].stdout.splitlines()]
    assert any(e["event"] == "warning" and "TOKEN looks like a secret" in e["message"]
               for e in events)
    # The second build ran the RUN that sees TOKEN because its value changed: said, unshown.
    (miss,) = [e for e in events if e["event"] == "cache_miss" and e["step"] == 4]
    (reason,) = miss["reasons"]
    assert reason["kind"] == "build_arg_changed" and reason["name"] == "TOKEN"
    assert reason["secret"] is True

    why = cli("why", str(ctx), "--json")
    assert why.returncode == 0, why.stderr
    assert json.loads(why.stdout)["steps"]
    assert cli("why", str(ctx)).returncode == 0
    history = cli("history", "--json")
    assert history.returncode == 0, history.stderr
    (last, *_) = json.loads(history.stdout)
    assert last["build_args"]["GREETING"] == "hello"  # an ordinary one is kept as given
    assert last["build_args"]["TOKEN"].startswith("hmac-sha256:")
    layers = cli("layers", "--last", "--json")
    assert layers.returncode == 0, layers.stderr

    # A build that fails in a step leaves a record for a debug shell: names only, too.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Containerfile").write_text(
        f'FROM {BASE}\nARG TOKEN\nRUN test -n "$TOKEN" && exit 3\n')
    failed = cli("build", str(broken), "--profile", "host-ro", "--project", project,
                 "--build-arg", f"TOKEN={VALUES[0].decode()}", "--quiet")
    assert failed.returncode == 1, failed.stderr
    assert list((data / "buildcage" / "debug").glob("*.json"))

    stores = data / "buildcage" / "stores"  # Buildah's image store: the image, as built
    assert stores.is_dir()
    files = [p for p in data.rglob("*") if p.is_file() and not p.is_symlink()
             and not p.is_relative_to(stores)]
    assert any(p.name == "history.sqlite3" for p in files)
    key = next(p for p in files if p.name == "history.sqlite3.key")
    assert key.stat().st_mode & 0o077 == 0
    secret_key = key.read_bytes()
    assert len(secret_key) == 32
    assert not any(secret_key.hex() in text for text in printed)  # the key is never shown
    for path in files:
        content = path.read_bytes()
        for value in VALUES:
            assert value not in content, f"{value!r} in {path}"
        if path != key:
            assert secret_key not in content and secret_key.hex().encode() not in content, path
