"""Why a step missed the cache, on real rebuilds (host-ro, real Buildah): one context rebuilt
after each kind of change, every reason checked against what Buildah actually did (a step only
gets a CacheMiss when Buildah ran it), then `buildcage why` reads the last build back.

One sequence on purpose: each build is the next one's earlier build, and a rebuild costs a few
seconds; about 45 s for all of it here. The fresh-store reason is checked on the isolated build
of test_builds_real.py (every build there is one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from podman_helpers import ROOT, Recorder, build

from tui.engine.cache_reasons import (
    BuildArgChanged,
    EarlierStepMissed,
    FilesChanged,
    ImageChanged,
    InstructionChanged,
    NoCache,
    NoEarlierBuild,
    OtherStore,
)
from tui.engine.config import load_config
from tui.engine.events import CacheHit, CacheMiss, Failed, StepDone
from tui.engine.history import History
from tui.engine.session import Engine

REGISTRY_BASE = "127.0.0.1:5000/buildcage/busybox:latest"
BUILDER_IMAGE = "localhost/buildcage/builder:latest"


@pytest.fixture
def cli_engine(provisioned, data_home) -> Engine:
    """An engine with the history the CLI reads (XDG_DATA_HOME/buildcage), so `buildcage why`
    sees these builds."""
    return Engine(load_config(), History())


def point(tag: str, image: str) -> str:
    """Tags ``image`` (already in the host store) as ``tag``; its id. A tag, not a `podman
    build`: a native build running next to another session's host-ro builder can deadlock on
    the store's locks (README, Findings)."""
    if subprocess.run(["podman", "image", "exists", image]).returncode != 0:
        subprocess.run(["podman", "pull", "-q", image], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["podman", "tag", image, tag], check=True)
    return subprocess.run(["podman", "image", "inspect", "-f", "{{.Id}}", tag], check=True,
                          capture_output=True, text=True).stdout.strip()


def misses(rec: Recorder) -> dict[int, tuple]:
    return {e.step: e.reasons for e in rec.of(CacheMiss)}


def ran(rec: Recorder) -> set[int]:
    """Steps Buildah ran (not FROM, not from cache): exactly those must be explained."""
    started = {e.step: e.instruction for e in rec.events if type(e).__name__ == "StepStarted"}
    return {e.step for e in rec.of(StepDone)
            if not e.cached and not started[e.step].startswith("FROM")}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def test_every_reason_on_real_rebuilds(cli_engine: Engine, run_id: str, tmp_path: Path) -> None:
    base = f"localhost/buildcage-it/why-base:{run_id}"
    old_id = point(base, REGISTRY_BASE)
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    (ctx / "app" / "a.txt").write_text("a\n")
    (ctx / "app" / "b.txt").write_text("b\n")
    (ctx / "app" / "skip.log").write_text("ignored\n")
    (ctx / ".containerignore").write_text("app/*.log\n")
    containerfile = ctx / "Containerfile"
    text = (f"FROM {base}\nARG V=1\nRUN echo \"v=$V\"\nCOPY app /app\nRUN echo step\n")
    containerfile.write_text(text)
    project = f"why-{run_id}"

    def again(**options: object) -> Recorder:
        options.setdefault("project", project)
        rec = build(cli_engine, ctx, profile="host-ro", **options)
        assert rec.done.status == "succeeded", rec.of(Failed)
        assert set(misses(rec)) == ran(rec), "every step Buildah ran is explained, no other"
        return rec

    try:
        # 1. Nothing to compare with: the first miss says so, the rest follow from it.
        first = again()
        assert misses(first)[2] == (NoEarlierBuild(store=(
            f"the store of project {project} (profile host-ro)")),)
        assert misses(first)[5] == (EarlierStepMissed(stage=1, step=2, instruction="ARG V=1"),)

        # 2. Files: one changed, one removed, one added, and the ignored one edited, which
        # does not count (Buildah agrees: steps 2-3 still come from cache).
        (ctx / "app" / "a.txt").write_text("A\n")
        (ctx / "app" / "b.txt").unlink()
        (ctx / "app" / "c.txt").write_text("c\n")
        (ctx / "app" / "skip.log").write_text("edited\n")
        files = again()
        assert ran(files) == {4, 5}
        (reason,) = misses(files)[4]
        assert isinstance(reason, FilesChanged)
        assert reason.added == ("app/c.txt",) and reason.removed == ("app/b.txt",)
        assert [(c.path, c.what) for c in reason.changed] == [("app/a.txt", ("content",))]
        assert "skip.log" not in reason.full()
        assert misses(files)[5] == (EarlierStepMissed(stage=1, step=4,
                                                      instruction="COPY app /app"),)

        # 3. Only the ignored file edited, and the last instruction: Buildah reuses the COPY
        # (no CacheMiss for it) and runs the edited step, named with its old and new text.
        (ctx / "app" / "skip.log").write_text("edited again\n")
        containerfile.write_text(text.replace("RUN echo step", "RUN echo step two"))
        edited = again()
        assert ran(edited) == {5}
        (reason,) = misses(edited)[5]
        assert isinstance(reason, InstructionChanged)
        assert (reason.old, reason.new) == ("RUN echo step", "RUN echo step two")

        # 4. A build argument the RUN sees: its old and new value.
        changed_arg = again(build_args=(("V", "2"),))
        assert ran(changed_arg) == {3, 4, 5}
        (reason,) = misses(changed_arg)[3]
        assert reason == BuildArgChanged(name="V", old="1", new="2", build=reason.build)
        assert misses(changed_arg)[4][0] == EarlierStepMissed(stage=1, step=3,
                                                              instruction='RUN echo "v=$V"')

        # 5. The base image retagged (to another image with a shell): the first step after
        # FROM names both ids.
        new_id = point(base, BUILDER_IMAGE)
        assert new_id != old_id
        rebased = again(build_args=(("V", "2"),))
        (reason,) = misses(rebased)[2]
        assert isinstance(reason, ImageChanged) and reason.ref == base
        assert (reason.old_id, reason.new_id) == (old_id, new_id)

        # 6. --no-cache, through the CLI: the reason is in its --json output.
        out = cli("build", str(ctx), "--profile", "host-ro", "--project", project,
                  "--build-arg", "V=2", "--no-cache", "--json")
        assert out.returncode == 0, out.stderr
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        cache_misses = [e for e in lines if e["event"] == "cache_miss"]
        assert [e["step"] for e in cache_misses] == [2, 3, 4, 5]
        assert all(e["reasons"] == [NoCache().to_dict()] for e in cache_misses)

        # 7. Another store (another project): the earlier build there is named.
        elsewhere = again(project=f"{project}-other", build_args=(("V", "2"),))
        (reason,) = misses(elsewhere)[2]
        assert isinstance(reason, OtherStore)
        assert reason.previous_store == f"the store of project {project} (profile host-ro)"
        assert not elsewhere.of(CacheHit)

        # `buildcage why`: the last build of the context, from history, human and JSON.
        why = cli("why", str(ctx), "--json")
        assert why.returncode == 0, why.stderr
        report = json.loads(why.stdout)
        assert report["profile"] == "host-ro" and report["status"] == "succeeded"
        assert [s["reasons"][0]["kind"] for s in report["steps"] if s["reasons"]] == [
            "other_store", "earlier_step_missed", "earlier_step_missed", "earlier_step_missed"]
        human = cli("why", str(ctx), "--profile", "host-ro", "--project", project)
        assert human.returncode == 0, human.stderr
        assert "--no-cache" in human.stdout  # the last build in that store was build 6
    finally:
        # Only the name: the images themselves are the session's busybox and builder.
        subprocess.run(["podman", "untag", base, base], capture_output=True)
