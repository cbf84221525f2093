"""Paths against real podman: a private context builds in a user namespace, the builder sees a
Containerfile kept outside the context and nothing beside it, a snapshot keeps the cache warm,
and escapes (a symlinked store, an unrelated oci: directory) are refused before anything runs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman_helpers import EXAMPLES, ROOT, Background, Recorder, build

from tui.engine.events import CacheHit, Failed, LogLine, StepStarted
from tui.engine.runner import BuildRunner
from tui.engine.stores import leftovers

BASE = "127.0.0.1:5000/buildcage/busybox:latest"


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory as ``mktemp -d`` makes it: mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="buildcage-private-"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


def snapshots(data_home: Path) -> list[str]:
    root = data_home / "buildcage" / "snapshots"
    return sorted(os.listdir(root)) if root.exists() else []


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=600)


@pytest.mark.parametrize("profile", ["isolated", "host-ro"])
def test_a_private_context_builds_in_every_kind_of_builder(engine, data_home, private_dir,
                                                           profile):
    (private_dir / "Containerfile").write_text(
        f"FROM {BASE}\nCOPY secret.txt /secret.txt\nRUN cat /secret.txt && ls -l /secret.txt\n")
    secret = private_dir / "secret.txt"
    secret.write_text("only-for-root-7f3a\n")
    secret.chmod(0o600)
    (private_dir / "Containerfile").chmod(0o600)
    before = {p.name: p.stat() for p in private_dir.iterdir()}
    plan = engine.plan(private_dir, profile=profile, no_cache=True)
    # A user-namespaced root cannot read the context: it gets a snapshot. The host's root can.
    assert (plan.context_snapshot is not None) is (profile == "isolated")
    rec = Recorder()
    engine.runner(plan, rec).run()
    assert rec.done.status == "succeeded", rec.of(Failed)
    lines = [e.line for e in rec.of(LogLine)]
    assert "only-for-root-7f3a" in lines
    assert any(line.startswith("-rw-------") and "/secret.txt" in line for line in lines)
    # The user's own files are untouched: same owner, mode, inode (podman's U chowned the copy).
    after = {p.name: p.stat() for p in private_dir.iterdir()}
    for name, info in before.items():
        assert (after[name].st_uid, after[name].st_mode, after[name].st_ino) == \
               (info.st_uid, info.st_mode, info.st_ino)
    assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700
    assert rec.build_id not in snapshots(data_home)
    assert leftovers(engine.client(), rec.build_id) == []


def test_containerfile_outside_the_context_is_the_only_thing_mounted_beside_it(
        engine, data_home, private_dir, tmp_path, monkeypatch):
    home_like = private_dir / "home"
    home_like.mkdir(mode=0o700)
    (home_like / "id_rsa").write_text("PRIVATE KEY\n")
    cf = home_like / "Containerfile.dev"
    cf.write_text(f"FROM {BASE}\nCOPY greeting.txt /g\nRUN cat /g\n")
    cf.chmod(0o600)
    seen: list[dict] = []
    original = BuildRunner._start_builder  # noqa: SLF001 - wrapped to reach the builder it starts

    def recording(self, spec):
        container = original(self, spec)
        if container is not None and spec.name == "build":  # the phase that sees the context
            container.reload()
            seen.append(container.attrs)
        return container

    monkeypatch.setattr(BuildRunner, "_start_builder", recording)
    rec = build(engine, EXAMPLES / "hello", profile="isolated", containerfile=cf, no_cache=True)
    assert rec.done.status == "succeeded", rec.of(Failed)
    mounts = {m["Destination"]: m for m in seen[0]["Mounts"]}
    cf_mount = mounts["/buildcage/containerfile/Containerfile.dev"]
    build_id = rec.build_id
    snap = data_home.resolve() / "buildcage" / "snapshots" / build_id
    assert cf_mount["Source"] == str(snap / "containerfile" / "Containerfile.dev")
    assert cf_mount["RW"] is False and mounts["/context"]["RW"] is False
    assert mounts["/context"]["Source"] == str(snap / "context")
    sources = [m["Source"] for m in seen[0]["Mounts"]]
    assert not any(s == str(home_like) or s.startswith(str(home_like) + "/") for s in sources)
    assert not any(s.startswith(str(private_dir)) for s in sources)
    assert (cf.stat().st_uid, stat.S_IMODE(cf.stat().st_mode)) == (0, 0o600)


def test_a_warm_host_ro_rebuild_from_a_snapshot_is_all_cache_hits(engine, run_id, private_dir):
    context = private_dir / "multistage"
    shutil.copytree(EXAMPLES / "multistage", context)
    # host-ro reads the context itself unless asked: this test asks for a snapshot.
    options = {"profile": "host-ro", "project": f"warm-{run_id}", "snapshot": True}
    cold = build(engine, context, **options)
    assert cold.done.status == "succeeded", cold.of(Failed)
    warm = build(engine, context, **options)
    assert warm.done.status == "succeeded"
    steps = [s for s in warm.of(StepStarted) if not s.instruction.startswith("FROM")]
    assert len(steps) == 10
    assert {(h.stage, h.step) for h in warm.of(CacheHit)} == {(s.stage, s.step) for s in steps}
    assert warm.done.cache_hits == 10 and warm.done.image_id == cold.done.image_id
    # Editing the context after a build: the next build sees the edit (a new snapshot).
    (context / "app.sh").write_text((context / "app.sh").read_text() + "\n# edited\n")
    edited = build(engine, context, **options)
    assert edited.done.status == "succeeded" and edited.done.cache_hits < 10


def test_cancel_removes_the_snapshot(engine, data_home):
    plan = engine.plan(ROOT / "tests" / "data" / "contexts" / "slow", profile="isolated",
                       no_cache=True, snapshot=True)
    running = Background(engine, plan)
    running.wait_for_line("started")
    assert plan.context_snapshot is not None and plan.context_snapshot.is_dir()
    running.runner.cancel()
    assert running.join(30).status == "canceled"
    assert not plan.context_snapshot.exists()


def test_a_store_symlinked_to_the_host_store_is_refused(data_home, engine, run_id, tmp_path):
    """The real host store is only ever planned against (``buildcage plan`` writes nothing into
    an existing store directory, even on code without the check); a decoy directory stands in
    for it in the real build."""
    stores = data_home / "buildcage" / "stores" / "host-ro"
    stores.mkdir(parents=True, exist_ok=True)
    root = data_home.resolve() / "buildcage" / "stores"
    decoy = tmp_path / "decoy-host-storage"
    decoy.mkdir()
    cases = [("plan", Path("/var/lib/containers/storage")), ("build", decoy)]
    for verb, target in cases:
        project = f"escape-{verb}-{run_id}"
        (stores / project).symlink_to(target)
        try:
            out = cli(verb, str(EXAMPLES / "hello"), "--profile", "host-ro", "--project", project)
            assert (out.returncode, out.stdout) == (2, "")
            assert out.stderr == (
                f"buildcage: error: the store of project {project!r} ({root}/host-ro/{project}) "
                f"resolves to {target}: buildcage keeps stores only in real directories under "
                f"{root}; remove the symlink\n")
        finally:
            (stores / project).unlink()
    assert os.listdir(decoy) == []  # no lock file, no nested store


def test_an_unrelated_index_json_in_an_oci_directory_is_refused_and_untouched(engine, tmp_path):
    out = tmp_path / "website"
    out.mkdir()
    (out / "index.json").write_text('{"pages": ["home"]}\n')
    result = cli("build", str(EXAMPLES / "hello"), "--profile", "host-ro", "--push",
                 f"oci:{out}:v1")
    assert result.returncode == 2
    assert "already holds files that are not an OCI layout (index.json)" in result.stderr
    assert os.listdir(out) == ["index.json"]
    assert (out / "index.json").read_text() == '{"pages": ["home"]}\n'


def test_an_oci_directory_buildcage_wrote_is_accepted_again(engine, tmp_path):
    out = tmp_path / "layout"
    for tag in ("v1", "v2"):
        rec = build(engine, EXAMPLES / "hello", profile="host-ro", push=f"oci:{out}:{tag}")
        assert rec.done.status == "succeeded", rec.of(Failed)
    assert {"index.json", "oci-layout", "blobs", ".buildcage-oci"} <= set(os.listdir(out))


def _listing(rec: Recorder) -> list[str]:
    lines = [e.line for e in rec.of(LogLine)]
    # /ctx itself is made by COPY at build time: its mtime is the build's, not the context's.
    return [line for line in lines[lines.index("BEGIN") + 1:lines.index("END")]
            if not line.startswith("/ctx ")]


def test_a_filtered_snapshot_gives_the_build_what_the_context_itself_gives(engine, private_dir):
    """The snapshot leaves out what .containerignore excludes; Buildah, which applies the file
    itself, sees the same files with the same modes, sizes and mtimes as from the context."""
    (private_dir / "Containerfile").write_text(
        f"FROM {BASE}\nCOPY . /ctx\nRUN echo BEGIN && find /ctx -exec stat -c '%n %a %s %Y' "
        "{} + | sort && echo END\n")
    (private_dir / ".containerignore").write_text("node_modules\n*.log\n**/*.tmp\n")
    (private_dir / "node_modules" / "pkg").mkdir(parents=True)
    (private_dir / "node_modules" / "pkg" / "big.js").write_bytes(b"x" * 1_000_000)
    (private_dir / "src" / "deep").mkdir(parents=True)
    (private_dir / "src" / "deep" / "a.tmp").write_text("t")
    (private_dir / "src" / "deep" / "keep.py").write_text("k")
    (private_dir / "src" / "deep" / "keep.py").chmod(0o640)
    (private_dir / "debug.log").write_text("l")
    (private_dir / "src" / "debug.log").write_text("kept: *.log is anchored at the root")
    (private_dir / "link").symlink_to("src/deep/keep.py")
    isolated = engine.plan(private_dir, profile="isolated", no_cache=True)
    assert isolated.context_snapshot is not None
    from_snapshot = Recorder()
    engine.runner(isolated, from_snapshot).run()
    assert from_snapshot.done.status == "succeeded", from_snapshot.of(Failed)
    from_context = build(engine, private_dir, profile="host-ro", no_cache=True, snapshot=False)
    assert from_context.done.status == "succeeded", from_context.of(Failed)
    listing = _listing(from_snapshot)
    assert listing == _listing(from_context)
    names = [line.split()[0] for line in listing]
    assert "/ctx/src/debug.log" in names and "/ctx/src/deep/keep.py" in names
    assert not any("node_modules" in n or n.endswith(".tmp") or n == "/ctx/debug.log"
                   for n in names)


def test_isolated_pushes_into_an_oci_directory_and_gives_it_back(engine, tmp_path):
    out = tmp_path / "oci-isolated"
    rec = build(engine, EXAMPLES / "hello", profile="isolated", push=f"oci:{out}:v1")
    assert rec.done.status == "succeeded", rec.of(Failed)
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [out, *out.rglob("*")]}
    assert owners == {(0, 0)}  # lent to the builder's root for the push, then given back
    assert {"index.json", "oci-layout", "blobs", ".buildcage-oci"} <= set(os.listdir(out))


def test_links_in_a_snapshot_are_never_followed_out_of_it(engine, private_dir, tmp_path):
    """podman's U chowns the snapshot without following its links: the files they point at
    keep their owner, and the build sees links, not the files outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-file").write_text("host-only\n")
    (private_dir / "Containerfile").write_text(
        f"FROM {BASE}\nCOPY . /ctx\nRUN ls -l /ctx && ! cat /ctx/file-link\n")
    (private_dir / "file-link").symlink_to(outside / "host-file")
    (private_dir / "dir-link").symlink_to(outside)
    (private_dir / "private").write_text("p")
    (private_dir / "private").chmod(0o600)
    rec = build(engine, private_dir, profile="isolated", no_cache=True)
    assert rec.done.status == "succeeded", rec.of(Failed)
    lines = [e.line for e in rec.of(LogLine)]
    assert any("file-link ->" in line for line in lines)
    assert "host-only" not in lines
    for path in (outside, outside / "host-file"):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0)
