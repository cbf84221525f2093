"""Bad input through the CLI gives a clear message and exit code 2, with no podman needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          timeout=60)


def test_podman_down_says_how_to_start_it(tmp_path):
    out = run("build", "examples/hello", BUILDCAGE_PODMAN_URL=f"unix://{tmp_path}/none.sock",
              XDG_DATA_HOME=str(tmp_path))
    assert out.returncode == 2
    assert "podman API service does not answer" in out.stderr
    assert "podman system service --time=0" in out.stderr


def test_json_mode_errors_are_events(tmp_path):
    out = run("build", "no/such/context", "--json", XDG_DATA_HOME=str(tmp_path))
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 2
    assert rows[0]["event"] == "error" and "does not exist" in rows[0]["message"]
    assert rows[-1] == {**rows[-1], "event": "done", "status": "failed"}


def test_broken_config_file_names_the_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('default_profile = "host-ro"\nbuilder_image = = 3\n')
    out = run("plan", "examples/hello", BUILDCAGE_CONFIG=str(config), XDG_DATA_HOME=str(tmp_path))
    assert out.returncode == 2
    assert str(config) in out.stderr and "line 2" in out.stderr


def test_bad_build_arg(tmp_path):
    out = run("plan", "examples/hello", "--build-arg", "NOEQUALS", XDG_DATA_HOME=str(tmp_path))
    assert out.returncode == 2 and "NAME=VALUE" in out.stderr


def test_a_bad_user_profile_is_a_message_naming_file_profile_and_key(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.fast]\ncap_add = "SYS_ADMIN"\n')
    out = run("plan", "examples/hello", BUILDCAGE_CONFIG=str(config), XDG_DATA_HOME=str(tmp_path))
    assert out.returncode == 2
    assert out.stderr == (f"buildcage: error: {config}: profiles.fast.cap_add must be a list of "
                          'capability names, got "SYS_ADMIN"\n')


def test_a_risky_user_profile_needs_allow_unsafe_profile(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.fast]\nbase = "isolated"\ncap_add = ["SYS_ADMIN"]\n')
    env = {"BUILDCAGE_CONFIG": str(config), "XDG_DATA_HOME": str(tmp_path)}
    refused = run("plan", "examples/hello", "--profile", "fast", **env)
    assert refused.returncode == 2
    assert "must be confirmed: it adds capabilities beyond the builder's default set: " \
        "SYS_ADMIN" in refused.stderr
    assert "--allow-unsafe-profile" in refused.stderr
    wrong_flag = run("plan", "examples/hello", "--profile", "fast", "--allow-host-rw", **env)
    assert wrong_flag.returncode == 2
    confirmed = run("plan", "examples/hello", "--profile", "fast", "--allow-unsafe-profile",
                    **env)
    assert confirmed.returncode == 0, confirmed.stderr
    assert "--cap-add=SYS_ADMIN" in confirmed.stdout or "SYS_ADMIN" in confirmed.stdout


def test_a_printed_plan_leaves_no_build_directory_it_does_not_need(tmp_path):
    """`buildcage plan` prints; it runs nothing. Each used to leave DATA/builds/ID (facts, an
    empty secrets folder) with no owner, for gc a day later, scanned by every build's start
    meanwhile. Only the podman script's secret files are written (it reads them, then removes
    the folder); a plan with none leaves nothing."""
    hello = str(Path(__file__).resolve().parents[2] / "examples" / "hello")
    data = tmp_path / "data"
    for form in ("podman", "kube", "json"):
        out = run("plan", hello, "--profile", "project", "--format", form,
                  XDG_DATA_HOME=str(data))
        assert out.returncode == 0, out.stderr
    builds = data / "buildcage" / "builds"
    assert not builds.exists() or sorted(builds.iterdir()) == []
    out = run("plan", hello, "--profile", "project", "--format", "podman", "--build-arg", "A=1",
              XDG_DATA_HOME=str(data))
    assert out.returncode == 0, out.stderr
    [build] = builds.iterdir()  # the script's: its build argument, read from a private file
    assert [p.name for p in build.iterdir()] == ["secrets"]
    assert len(list((build / "secrets").iterdir())) == 1
    assert str(build / "secrets") in out.stdout


def test_an_unknown_option_is_told_with_its_commands_usage():
    """argparse told an option the build command does not take (`build -x`) with the top
    level's usage (`buildcage [-h] {build,...}`), not the build command's options."""
    out = run("build", "examples/hello", "--no-such-option")
    assert out.returncode == 2
    assert out.stderr.startswith("usage: buildcage build "), out.stderr
    assert "unrecognized arguments: --no-such-option" in out.stderr
