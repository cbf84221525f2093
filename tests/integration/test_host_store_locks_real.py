"""A host-ro builder and the host's own podman share no lock (issue 7 leftover, README Findings).

containers/storage locks an additional image store with fcntl read locks on its
``overlay-images/images.lock`` and ``overlay-layers/layers.lock``. When that store is the host's,
they are the host podman's own lock files: a builder holding one stalls every podman write on
the machine, and Buildah's order (images, then layers) against podman's (layers, then images)
deadlocked a host-ro build and a native ``podman build`` here until one of them was killed.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from podman_helpers import EXAMPLES, Background

from tui.engine.renderings import create_kwargs
from tui.engine.stores import prepare, release

BASE = "localhost/buildcage/busybox:latest"
BOUND_S = 60
"""Not a speed check: an unblocked ``podman tag`` takes well under a second here, a blocked one
waits for as long as the lock is held (the holder below keeps it 75 s). 60 s tells the two apart
on any machine."""

HOLDER = r"""
use Fcntl qw(:DEFAULT :flock);
my @held;
for my $file (@ARGV) {
    open(my $fh, "<", $file) or next;
    my $lock = pack("ssx4qqlx4", F_RDLCK, 0, 0, 0, 0);
    my $ok = fcntl($fh, F_SETLK, $lock);
    flock($fh, LOCK_SH | LOCK_NB);
    push @held, $fh if $ok;
}
open(my $out, ">", "/signal/holding") or die "signal: $!";
print $out "holding ", scalar(@held), " of ", scalar(@ARGV), "\n";
close($out);
sleep 75;
"""
"""Read-locks (fcntl, as containers/storage does, and flock, as podman's database does) every
lock and database file the builder can reach under its additional stores, and keeps them."""


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["timeout", str(BOUND_S), "podman", *args], capture_output=True,
                          text=True)


def test_whatever_a_host_ro_builder_locks_never_stalls_the_hosts_podman(engine, run_id,
                                                                        tmp_path):
    plan = engine.plan(EXAMPLES / "hello", profile="host-ro", project=f"locks-{run_id}")
    client = engine.client()
    state = prepare(client, plan, pin=False)
    kwargs = create_kwargs(plan, "build")
    find = ("find /var/lib/shared -maxdepth 3 -type f "
            r"\( -name '*.lock' -o -name '*.db' \) -print0")
    kwargs["command"] = ["sh", "-c", f"{find} | xargs -0 perl -e '{HOLDER}'"]
    # It says so in a file: while it holds them, the podman service itself may not answer.
    kwargs["mounts"].append({"type": "bind", "source": str(tmp_path), "target": "/signal"})
    signal = tmp_path / "holding"
    container = client.containers.create(**kwargs)
    name = f"localhost/buildcage/locks-{run_id}:tagged"
    try:
        container.start()
        deadline = time.time() + 60
        while not signal.exists():
            assert time.time() < deadline, b"".join(container.logs()).decode()
            time.sleep(0.2)
        held = signal.read_text().strip()
        assert not held.startswith("holding 0 "), held  # it does hold locks
        # Each only once the one before it completed: a stalled one fails the test at once.
        tagged = _podman("tag", BASE, name)
        untagged = _podman("untag", BASE, name) if tagged.returncode == 0 else tagged
        created = _podman("create", "--network=none", BASE, "true") \
            if untagged.returncode == 0 else untagged
        removed = _podman("rm", created.stdout.strip()) if created.returncode == 0 else created
    finally:
        container.remove(force=True)  # its locks go with it
        release(client, state)
        subprocess.run(["podman", "untag", BASE, name], capture_output=True)
    for what, done in (("tag", tagged), ("untag", untagged), ("create", created),
                       ("rm", removed)):
        assert done.returncode == 0, (f"host `podman {what}` did not complete within {BOUND_S}s "
                                      f"while a host-ro builder held locks ({held}): "
                                      f"{done.stderr}")


def _image_with(tmp: Path, name: str, text: str) -> None:
    """``name``: the busybox base and a file /which holding ``text`` (podman cp and commit)."""
    (tmp / "which").write_text(text + "\n")
    made = subprocess.run(["podman", "create", "--network=none", BASE, "true"],
                          capture_output=True, text=True, check=True).stdout.strip()
    try:
        subprocess.run(["podman", "cp", str(tmp / "which"), f"{made}:/which"], check=True)
        subprocess.run(["podman", "commit", "-q", made, name], check=True, capture_output=True)
    finally:
        subprocess.run(["podman", "rm", made], capture_output=True)


def test_a_host_ro_build_keeps_the_view_of_the_host_store_it_started_with(engine, run_id,
                                                                        tmp_path):
    """The host retags an image while a build runs: the build reads the image the name had
    when it started (the one pinned for it), not half of each."""
    repo = f"localhost/buildcage/moving-{run_id}"
    _image_with(tmp_path, f"{repo}:a", "which=a")
    _image_with(tmp_path, f"{repo}:b", "which=b")
    subprocess.run(["podman", "tag", f"{repo}:a", f"{repo}:now"], check=True)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"FROM {BASE}\n"
        # Waits (at most 60 s) for the test to say the host has changed its store.
        "RUN --mount=type=bind,target=/ctx sh -c 'echo started; i=0; "
        "while [ ! -e /ctx/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'\n"
        f"COPY --from={repo}:now /which /which\n"
        "RUN cat /which\n")
    context.chmod(0o755)
    running = Background(engine, engine.plan(context, profile="host-ro", no_cache=True,
                                             project=f"moving-{run_id}"))
    try:
        running.wait_for_line("started")
        subprocess.run(["podman", "tag", f"{repo}:b", f"{repo}:now"], check=True)
        (context / "go").touch()
        done = running.join(120)
    finally:
        subprocess.run(["podman", "rmi", "-f", f"{repo}:a", f"{repo}:b", f"{repo}:now"],
                       capture_output=True)
    lines = [getattr(e, "line", "") for e in running.rec.events]
    assert done.status == "succeeded", "\n".join(map(repr, running.rec.events[-8:]))
    assert "which=a" in lines and "which=b" not in lines, lines[-20:]
