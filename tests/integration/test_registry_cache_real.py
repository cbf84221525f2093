"""The registry layer cache of `isolated` against real podman and the real local registry
(127.0.0.1:5000, htpasswd auth, the provisioned credentials): a rebuild in a fresh store reuses
the steps of the build before it, pulled by the trusted fetch phase, while the Containerfile's RUN
steps still reach nothing on the host's loopback, the registry included."""

from __future__ import annotations

from pathlib import Path

from podman_helpers import REGISTRY, Recorder, registry_tags
from test_hostile_real import Listener, context, lines

from tui.engine.events import BuildWarning, CacheExported, ImageInfo, PhaseDone, StepDone
from tui.engine.request import BuildRequest
from tui.engine.session import Engine

BASE = f"{REGISTRY}/buildcage/busybox:latest"


def build(engine: Engine, ctx: Path, *, profile: str, project: str) -> Recorder:
    """As the front ends build: through Engine.prepare, which decides whether the cache pays."""
    recorder = Recorder()
    prepared = engine.prepare(BuildRequest(ctx, profile, project=project), confirmed=True)
    engine.start(prepared, recorder).run()
    return recorder


def cached_steps(rec: Recorder) -> list[bool]:
    return [e.cached for e in rec.of(StepDone) if e.layer_id]


def probes(rec: Recorder) -> list[str]:
    """What the RUN step's connection attempts printed (a STEP line only quotes them)."""
    return [line for line in lines(rec) if line.startswith(("REACHED", "BLOCKED"))]


def cache_fact(rec: Recorder) -> CacheExported:
    facts = rec.of(CacheExported)
    assert len(facts) == 1, rec.of(BuildWarning)
    return facts[0]


def test_an_isolated_rebuild_hits_the_registry_cache_and_run_steps_still_see_no_network(
        engine, run_id, tmp_path: Path):
    listener = Listener()
    try:
        # The first RUN works for a while (a compile, say): the cold build measures it, so
        # the cache is worth its pulls (tui.engine.cache_worth) and later builds use it.
        ctx = context(tmp_path, f"""FROM {BASE}
RUN sleep 3
RUN echo one > /one
RUN echo two > /two
COPY data.txt /data.txt
RUN for port in 5000 {listener.port}; do \\
      if nc -w 2 127.0.0.1 $port </dev/null; then echo "REACHED $port"; \\
      else echo "BLOCKED $port"; fi; done
""")
        (tmp_path / "data.txt").write_text("first\n")
        (tmp_path / "data.txt").chmod(0o644)
        project = f"it-rcache-{run_id}"
        options = {"profile": "isolated", "project": project}
        plan = engine.plan(ctx, **options)
        assert plan.cache_repo == f"{REGISTRY}/buildcage-cache/{project}"

        cold = build(engine, ctx, **options)
        assert cold.done.status == "succeeded", lines(cold)[-20:]
        assert cold.done.cache_hits == 0
        first = cache_fact(cold)
        assert (first.images, first.pushed, first.error) == (5, 5, "")
        tags = registry_tags(f"buildcage-cache/{project}")
        assert plan.cache_index.rsplit(":", 1)[1] in tags and len(tags) == 6

        # Unchanged: every step comes from the cache the fetch phase pulled into a new store.
        warm = build(engine, ctx, **options)
        assert warm.done.status == "succeeded", lines(warm)[-20:]
        assert cached_steps(warm) == [True] * 5 and warm.done.cache_hits == 5
        assert warm.done.image_id == cold.done.image_id
        assert not probes(warm)
        assert (cache_fact(warm).images, cache_fact(warm).pushed) == (5, 0)
        # Nothing for the cache to push and nothing else to publish: the store's own records
        # said so here, and no publish container ran (tui.engine.cache_left).
        assert [e.phase for e in warm.of(PhaseDone)] == ["fetch", "build"]
        assert warm.of(ImageInfo) and warm.of(ImageInfo)[-1].layers

        # One file changed: the steps before it still hit, and the RUN step after it runs in
        # the cache's setup, with no way to the registry or any loopback service.
        (tmp_path / "data.txt").write_text("second\n")
        edit = build(engine, ctx, **options)
        assert edit.done.status == "succeeded", lines(edit)[-20:]
        assert cached_steps(edit) == [True, True, True, False, False]
        assert probes(edit) == ["BLOCKED 5000", f"BLOCKED {listener.port}"]
        assert (cache_fact(edit).images, cache_fact(edit).pushed) == (5, 2)
        assert [e.phase for e in edit.of(PhaseDone)] == ["fetch", "build", "publish"]
        assert probes(cold) == ["BLOCKED 5000", f"BLOCKED {listener.port}"]
        assert listener.connections == 0
    finally:
        listener.close()
