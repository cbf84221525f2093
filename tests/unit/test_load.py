"""--load: the trusted publish phase writes the image as an OCI archive into a per-build output
directory, the host's podman loads it, and a host tag naming another image is never moved
unless asked. The podman side is tested for real in tests/integration/test_load_real.py; here
the plan, the checks before a build, the tag rule, history and the printed forms."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from podman.errors import ImageNotFound

from tests.support.replay import ReplayEngine
from tui.cli_output import HumanPrinter, JsonPrinter
from tui.engine.config import Config
from tui.engine.events import Done, ImageLoaded, LoadRefused, event_from_json
from tui.engine.history import SCHEMA_VERSION, BuildRecord, History
from tui.engine.load import LoadConflict, check_tag, host_image_id, run_argv
from tui.engine.plan import ARCHIVE_FILE, OUTPUT_DIR
from tui.engine.planner import PlanError, make_plan
from tui.engine.renderings import create_kwargs, kube_pod
from tui.engine.request import BuildRequest

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
OLD, NEW = "a" * 64, "b" * 64
TAG = "localhost/buildcage/hello:latest"


pytestmark = pytest.mark.usefixtures("data_home")


def plan_for(profile: str, **options):
    return make_plan(HELLO, config=Config(), profile=profile, confirmed=True, **options)


# -- the plan ------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["host-ro", "isolated", "project"])
def test_only_the_publish_phase_gets_the_output_directory_and_writes_the_archive(profile):
    plan = plan_for(profile, load=True)
    out = [m for m in plan.phase_mounts("publish") if m.target == OUTPUT_DIR]
    assert len(out) == 1 and out[0].source == str(plan.output_dir) and not out[0].read_only
    assert plan.output_dir.parent == plan.build_dir  # removed with the build's directory
    # The container running the Containerfile's steps never sees it (nor does fetch).
    for phase in ("build", "fetch"):
        assert all(m.target != OUTPUT_DIR for m in plan.phase_mounts(phase)), phase
    script = plan.publish_command()[-1]
    archive = f"buildah push --quiet {plan.tag} oci-archive:{OUTPUT_DIR}/{ARCHIVE_FILE}"
    assert archive in script
    # The archive is written after the facts (the load compares the two image ids).
    assert script.index("buildah inspect") < script.index(archive)
    # The renderings follow the plan: podman-py arguments and the Pod alike.
    kwargs = create_kwargs(plan, "publish")
    assert {"source": str(plan.output_dir), "target": OUTPUT_DIR, "read_only": False} in [
        {k: m[k] for k in ("source", "target", "read_only")} for m in kwargs["mounts"]]
    if profile == "host-ro":  # no Pod form (test_hostview)
        return
    pod = kube_pod(plan, plan.phase("publish"))
    assert any(v.get("hostPath", {}).get("path") == str(plan.output_dir)
               for v in pod["spec"]["volumes"])


def test_without_load_nothing_changes():
    plan = plan_for("host-ro")
    assert all(m.target != OUTPUT_DIR for m in plan.phase_mounts("publish"))
    assert "oci-archive" not in plan.publish_command()[-1]


def test_host_rw_writes_no_archive_the_image_is_in_the_host_store_already():
    plan = make_plan(HELLO, config=Config(), profile="host-rw", confirmed=frozenset({"host-rw"}),
                     load=True)
    assert not plan.writes_archive
    assert all(m.target != OUTPUT_DIR for m in plan.phase_mounts("publish"))
    assert "oci-archive" not in plan.publish_command()[-1]


def test_a_push_and_a_load_both_happen():
    plan = plan_for("host-ro", load=True, push="127.0.0.1:5000/demo/hello:1")
    script = plan.publish_command()[-1]
    assert "docker://127.0.0.1:5000/demo/hello:1" in script and "oci-archive:" in script


# -- prepare: the checks before anything runs ---------------------------------------------------
class HostImages(ReplayEngine):
    """A replay engine whose host store holds ``images`` (tag -> image id)."""

    def __init__(self, history: History, images: dict[str, str]) -> None:
        super().__init__(history)
        self.images = images

    def host_image_id(self, tag: str) -> str:
        return self.images.get(tag, "")


def test_kube_builds_cannot_load_into_this_host(tmp_path):
    engine = ReplayEngine(History(tmp_path / "h.sqlite3"))  # client() raises: never asked
    with pytest.raises(PlanError, match=r"--load.*Kubernetes.*--push"):
        engine.prepare(BuildRequest(HELLO, "host-ro", load=True, on="kube"))


def test_a_tag_naming_another_host_image_is_refused_before_the_build(tmp_path):
    engine = HostImages(History(tmp_path / "h.sqlite3"), {TAG: OLD})
    with pytest.raises(LoadConflict) as caught:
        engine.prepare(BuildRequest(HELLO, "host-ro", load=True))
    assert caught.value.tag == TAG and caught.value.host_image_id == OLD
    assert isinstance(caught.value, PlanError)  # a UserError: exit 2 from the CLI
    assert "--load-overwrite" in str(caught.value) and OLD[:12] in str(caught.value)
    # Asked to overwrite: it goes ahead; a tag nobody uses, too.
    assert engine.prepare(BuildRequest(HELLO, "host-ro", load=True, load_overwrite=True)
                          ).plan.load_overwrite
    assert engine.prepare(BuildRequest(HELLO, "host-ro", load=True, tag="localhost/free:1")
                          ).plan.load


def test_a_tag_buildcage_loaded_before_may_move(tmp_path):
    """The edit-rebuild-load loop: the host tag names the image the last --load put there."""
    history = History(tmp_path / "h.sqlite3")
    history.add(BuildRecord(started_at=1.0, profile="host-ro", context=str(HELLO),
                            status="succeeded", image_id=OLD, loaded=TAG))
    engine = HostImages(history, {TAG: OLD})
    assert engine.prepare(BuildRequest(HELLO, "host-ro", load=True)).plan.load
    # ...but only under the tag it was loaded as.
    engine.images = {"localhost/other:1": OLD}
    with pytest.raises(LoadConflict):
        engine.prepare(BuildRequest(HELLO, "host-ro", load=True, tag="localhost/other:1"))


def test_load_needs_a_tag_not_a_digest(tmp_path):
    engine = HostImages(History(tmp_path / "h.sqlite3"), {})
    with pytest.raises(PlanError, match="digest"):
        engine.prepare(BuildRequest(HELLO, "host-ro", load=True,
                                    tag="localhost/x@sha256:" + "c" * 64))


# -- the tag rule, on what podman answers --------------------------------------------------------
class FakeImage:
    def __init__(self, image_id: str) -> None:
        self.id = image_id


class FakeImages:
    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags

    def get(self, name: str) -> FakeImage:
        if name not in self.tags:
            raise ImageNotFound(name)
        return FakeImage(self.tags[name])


class FakeClient:
    def __init__(self, tags: dict[str, str]) -> None:
        self.images = FakeImages(tags)


def never(tag: str, image_id: str) -> bool:
    return False


@pytest.mark.parametrize(("tags", "overwrite", "before", "refused"), [
    ({}, False, never, False),                       # the tag is free
    ({TAG: NEW}, False, never, False),               # it names this very image already
    ({TAG: OLD}, False, never, True),                # another image: refused
    ({TAG: OLD}, True, never, False),                # ...unless asked
    ({TAG: OLD}, False, lambda t, i: (t, i) == (TAG, OLD), False),  # buildcage put it there
])
def test_check_tag(tags, overwrite, before, refused):
    client = FakeClient(tags)
    assert host_image_id(client, TAG) == tags.get(TAG, "")
    result = check_tag(client, TAG, NEW, overwrite=overwrite, loaded_before=before)
    if refused:
        assert result == LoadRefused(tag=TAG, image_id=NEW, host_image_id=OLD, time=result.time)
    else:
        assert result is None


def test_run_it_is_podman_run_rm_it_of_the_image_id_on_the_same_service():
    argv = run_argv("unix:///run/podman/podman.sock", NEW)
    assert argv == ["podman", "--url", "unix:///run/podman/podman.sock", "run", "--rm", "-it",
                    NEW]


# -- events, history, the CLI's printers ----------------------------------------------------------
def test_the_new_events_round_trip_as_json():
    for event in (ImageLoaded(image_id=NEW, tag=TAG, tags=(TAG,)),
                  LoadRefused(tag=TAG, image_id=NEW, host_image_id=OLD),
                  Done(status="succeeded", image_id=NEW, loaded=TAG)):
        assert event_from_json(event.to_json()) == event


def test_history_records_the_loaded_tag_and_answers_loaded_before(tmp_path):
    with History(tmp_path / "h.sqlite3") as history:
        history.add(BuildRecord(started_at=1.0, profile="host-ro", context="/c",
                                status="succeeded", image_id=OLD, loaded=TAG))
        history.add(BuildRecord(started_at=2.0, profile="host-ro", context="/c",
                                status="succeeded", image_id=NEW))
        assert history.recent()[1].loaded == TAG and history.recent()[0].loaded == ""
        assert history.loaded_before(TAG, OLD) and not history.loaded_before(TAG, NEW)
        assert history.mark_loaded(NEW, TAG)  # a load after the build (the TUI's key)
        assert history.loaded_before(TAG, NEW) and history.recent()[0].loaded == TAG
        assert not history.mark_loaded("c" * 64, TAG)  # no such build


def test_history_written_by_the_previous_schema_gains_the_column(tmp_path):
    path = tmp_path / "h.sqlite3"
    History(path).close()
    db = sqlite3.connect(path)  # make it look like schema 1: no "loaded" column
    db.execute("ALTER TABLE builds DROP COLUMN loaded")
    db.execute("INSERT INTO builds (started_at, profile, context, containerfile, tag, target, "
               "status, duration_s, steps_total, cache_hits, image_id, pushed, build_args, "
               "stage_target, no_cache, warm) VALUES (1, 'host-ro', '/c', '', '', '', "
               "'succeeded', 1, 1, 0, '', '', '{}', '', 0, 0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with History(path) as history:
        assert [r.loaded for r in history.recent()] == [""]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    db.close()


def test_rebuild_from_history_loads_again():
    record = BuildRecord(started_at=1.0, profile="host-ro", context=str(HELLO),
                         status="succeeded", loaded=TAG)
    request = BuildRequest.from_record(record)
    assert request.load and not request.load_overwrite


def test_printers_say_what_was_loaded_and_how_to_run_it():
    human = HumanPrinter(io.StringIO())
    human(ImageLoaded(image_id=NEW, tag=TAG, tags=(TAG,)))
    human(LoadRefused(tag=TAG, image_id=NEW, host_image_id=OLD))
    out = human.out.getvalue().splitlines()
    assert out[0] == f"==> loaded into the host's podman as {TAG} (image {NEW[:12]})"
    assert out[1] == f"    run it: podman run --rm -it {TAG}"
    assert out[2].startswith(f"==> not loaded: {TAG} on the host names image {OLD[:12]}")
    json_out = JsonPrinter(io.StringIO())
    json_out(ImageLoaded(image_id=NEW, tag=TAG, tags=(TAG,)))
    line = json_out.out.getvalue()
    assert '"event": "image_loaded"' in line and f'"tags": ["{TAG}"]' in line


def test_cli_load_flags_become_the_request():
    from tui.cli import _request, parser

    args = parser().parse_args(["build", str(HELLO), "--load"])
    assert _request(args).load and not _request(args).load_overwrite
    args = parser().parse_args(["build", str(HELLO), "--load-overwrite"])  # implies --load
    assert _request(args).load and _request(args).load_overwrite
    assert not _request(parser().parse_args(["build", str(HELLO)])).load


def test_cli_refuses_load_on_kube_with_exit_2(tmp_path):
    import os
    import subprocess
    import sys

    root = HELLO.parents[1]
    out = subprocess.run([sys.executable, "-m", "tui", "build", "examples/hello", "--on", "kube",
                          "--load"], capture_output=True, text=True, cwd=root, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(root),
                              "XDG_DATA_HOME": str(tmp_path),
                              "BUILDCAGE_PODMAN_URL": f"unix://{tmp_path}/none.sock"})
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("buildcage: error: --load") and "Traceback" not in out.stderr


def test_a_later_load_needs_a_store_that_outlived_the_build():
    from tui.engine.load import LoadError, load_built

    plan = plan_for("isolated")
    with pytest.raises(LoadError, match="removed with the build.*--load"):
        load_built(FakeClient({}), plan, NEW, loaded_before=never)
    with pytest.raises(LoadConflict):  # the tag rule first, whatever the store
        load_built(FakeClient({TAG: OLD}), plan, NEW, loaded_before=never)


def test_comparison_builds_deliver_nothing():
    request = BuildRequest(HELLO, "host-ro", push="127.0.0.1:5000/x:1", load=True,
                           load_overwrite=True)
    compared = request.with_profile("isolated", no_cache=True)
    assert (compared.push, compared.load, compared.load_overwrite) == ("", False, False)


# -- load_archive's own bookkeeping, on a stand-in for the API ------------------------------------
class LoadingClient(FakeClient):
    """Answers the load with ``answer`` and remembers what was removed."""

    def __init__(self, tags: dict[str, str], answer: str) -> None:
        super().__init__(tags)
        self.api = self
        self.answer = answer
        self.removed: list[str] = []
        self.images.remove = self.removed.append  # type: ignore[attr-defined]

    def post(self, path: str, **kwargs):
        assert path == "/images/load" and kwargs["data"].read(5) == b"tar!!"
        self.images.tags[self.answer] = self.answer  # now on the host, by id
        client = self

        class Response:
            def raise_for_status(self) -> None:
                pass

            def json(self) -> dict:
                return {"Names": [f"sha256:{client.answer}"]}

        return Response()


def archive_plan(tmp_path):
    plan = plan_for("host-ro", load=True)
    plan.output_dir.mkdir(parents=True)
    (plan.output_dir / ARCHIVE_FILE).write_bytes(b"tar!!")
    return plan


def test_a_cancel_during_the_load_leaves_nothing_on_the_host(tmp_path):
    from tui.engine.load import load_archive

    plan = archive_plan(tmp_path)
    client = LoadingClient({}, NEW)
    calls = iter([False, True])  # not before the upload; by the time it is done
    assert load_archive(client, plan, NEW, loaded_before=never,
                        canceled=lambda: next(calls)) is None
    assert client.removed == [NEW]  # the image it brought in went again
    assert not (plan.output_dir / ARCHIVE_FILE).exists()  # and so did the archive


def test_an_archive_holding_another_image_is_not_tagged(tmp_path):
    from tui.engine.load import LoadError, load_archive

    plan = archive_plan(tmp_path)
    client = LoadingClient({}, OLD)
    with pytest.raises(LoadError, match="held image aaaaaaaaaaaa, not the built bbbbbbbbbbbb"):
        load_archive(client, plan, NEW, loaded_before=never)
    assert client.removed == [OLD]


def test_an_image_the_host_had_before_is_never_removed(tmp_path):
    from tui.engine.load import load_archive

    plan = archive_plan(tmp_path)
    client = LoadingClient({NEW: NEW}, NEW)  # the host has this very image already
    calls = iter([False, True])
    assert load_archive(client, plan, NEW, loaded_before=never,
                        canceled=lambda: next(calls)) is None
    assert client.removed == []


def test_the_archive_is_read_only_as_a_regular_file(tmp_path):
    """A link planted where the archive should be is not followed (the host's files are not
    sent anywhere), and it is removed like the archive."""
    from tui.engine.load import LoadError, load_archive

    plan = plan_for("host-ro", load=True)
    plan.output_dir.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (plan.output_dir / ARCHIVE_FILE).symlink_to(secret)
    with pytest.raises(LoadError, match="not a regular file"):
        load_archive(LoadingClient({}, NEW), plan, NEW, loaded_before=never)
    assert not (plan.output_dir / ARCHIVE_FILE).is_symlink() and secret.exists()
