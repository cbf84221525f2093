"""What the registry cache has left to push, read here from the store (tui.engine.cache_left),
says what the publish phase's cache step (``BuildPlan.cache_push_script``) does with the same
records: each case runs the script on a fake buildah and reads a store written as c/storage
writes it, and both must agree. When nothing is left, a build starts no publish container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_registry_cache import HEX, Fake, cache_script, plan_for, setup_store
from tui.engine.cache_left import CacheLeft, cache_left
from tui.engine.plan import CACHE_FILE, CACHE_MAX_IMAGES

pytestmark = pytest.mark.usefixtures("data_home")

BASE, A, B, C, D, E = HEX[0], HEX[1], HEX[2], HEX[3], HEX[4], HEX[5]

CASES = {
    # containers (the image each working container started from), result, pulled from cache
    "warm: every step from the cache": ([BASE, A], B, [A, B]),
    "an edit: the last step built again": ([BASE, A], C, [A, B]),
    "new steps and a stale cache image": ([BASE, A, D], E, [A, C]),
    "the same cache, one image more pulled than used": ([BASE, A], B, [A, B, C]),
    "a first build: nothing in the cache": ([BASE, A, D, A], E, []),
    "a result that is a base (FROM only)": ([], BASE, []),
}


def write_store(root: Path, plan, containers: list[str], result: str, pulled: list[str]) -> None:
    (root / "overlay-images").mkdir(parents=True)
    (root / "overlay-containers").mkdir()
    names: dict[str, list[str]] = {BASE: list(plan.fetch_refs)}
    names.setdefault(result, []).append(plan.tag)
    for image in pulled:
        names.setdefault(image, []).append(f"{plan.cache_repo}:{image}")
    (root / "overlay-images" / "images.json").write_text(json.dumps(
        [{"id": i, "names": n, "layer": i, "created": "2026-11-30T00:00:00Z"}
         for i, n in names.items()]))
    (root / "overlay-containers" / "containers.json").write_text(json.dumps(
        [{"id": HEX[10 + n % 5][:-2] + f"{n:02x}", "names": [f"w{n}"], "image": image,
          "layer": HEX[14]} for n, image in enumerate(containers)]))


@pytest.mark.parametrize("case", list(CASES))
def test_the_store_says_what_the_publish_phase_would_push(case: str, tmp_path: Path) -> None:
    containers, result, pulled = CASES[case]
    plan = plan_for()
    fake = Fake(tmp_path)
    setup_store(fake, plan, containers=containers, final=result, pulled=pulled, base=BASE)
    script = fake.run(cache_script(plan, "publish"))
    assert script.returncode == 0, script.stderr
    pushes = [c for c in fake.calls() if c.startswith("push ")]
    index = [c for c in fake.calls() if c.startswith("commit ")]
    recorded = (fake.facts / CACHE_FILE).read_text().split()

    write_store(tmp_path / "store", plan, containers, result, pulled)
    left = cache_left(plan, str(tmp_path / "store"))
    assert isinstance(left, CacheLeft)
    assert left.used == int(recorded[1])
    assert left.new == len(pushes) == int(recorded[3])
    assert left.nothing == (not pushes and not index)


def test_only_a_build_that_used_exactly_the_cache_has_nothing_left(tmp_path: Path) -> None:
    plan = plan_for()
    found = {}
    for n, (case, (containers, result, pulled)) in enumerate(CASES.items()):
        write_store(tmp_path / str(n), plan, containers, result, pulled)
        left = cache_left(plan, str(tmp_path / str(n)))
        assert left is not None
        found[case] = left.nothing
    assert [case for case, nothing in found.items() if nothing] == [
        "warm: every step from the cache", "a result that is a base (FROM only)"]


def test_records_that_are_not_c_storage_s_leave_the_phase_to_run(tmp_path: Path) -> None:
    """A store a RUN step rewrote (or that never got its result) is no reason to skip the
    phase: None, and the publish phase looks for itself."""
    plan = plan_for()
    root = tmp_path / "store"
    write_store(root, plan, [BASE, A], B, [A, B])
    assert cache_left(plan, str(root)) is not None
    containers = root / "overlay-containers" / "containers.json"
    for text in ("{}", "not json", '[{"id": 1}], [2]'):
        containers.write_text(text)
        assert cache_left(plan, str(root)) is None, text
    containers.unlink()
    assert cache_left(plan, str(root)) is None
    write_store(tmp_path / "noresult", plan, [BASE, A], B, [A, B])
    images = tmp_path / "noresult" / "overlay-images" / "images.json"
    records = json.loads(images.read_text())
    images.write_text(json.dumps([r for r in records if plan.tag not in r["names"]]))
    assert cache_left(plan, str(tmp_path / "noresult")) is None
    link = tmp_path / "linked"
    write_store(link, plan, [BASE, A], B, [A, B])
    target = link / "overlay-containers" / "containers.json"
    target.rename(tmp_path / "elsewhere.json")
    target.symlink_to(tmp_path / "elsewhere.json")
    assert cache_left(plan, str(link)) is None  # no link followed


def test_both_count_at_most_the_cap(tmp_path: Path) -> None:
    """More images than the cap: the index lists CACHE_MAX_IMAGES, and both say so (the
    script once counted one more than it listed)."""
    plan = plan_for()
    many = [f"{n:064x}" for n in range(1, CACHE_MAX_IMAGES + 20)]
    fake = Fake(tmp_path)
    setup_store(fake, plan, containers=[BASE, *many], final=many[-1], pulled=many, base=BASE)
    script = fake.run(cache_script(plan, "publish"))
    assert script.returncode == 0, script.stderr
    recorded = (fake.facts / CACHE_FILE).read_text().split()
    write_store(tmp_path / "s", plan, [BASE, *many], many[-1], many)
    left = cache_left(plan, str(tmp_path / "s"))
    assert left is not None and left.used == int(recorded[1]) == CACHE_MAX_IMAGES


def test_only_a_local_fresh_store_with_nothing_else_to_publish_may_skip_the_phase() -> None:
    import dataclasses

    plan = plan_for()
    assert plan.publish_may_be_idle
    assert not plan_for(push="127.0.0.1:5000/demo/hello:1").publish_may_be_idle
    assert not dataclasses.replace(plan, load=True).publish_may_be_idle
    assert not dataclasses.replace(plan, remote=True).publish_may_be_idle
    assert not plan.debug_rebuild().publish_may_be_idle  # pushes no cache
    assert not dataclasses.replace(plan, cache_repo="").publish_may_be_idle
    assert not plan_for("project").publish_may_be_idle
