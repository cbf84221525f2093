"""A shell where a build failed, without podman: which step and layer a failed build's events
and Containerfile name, what the record keeps, and the debug phase's container (network none,
no secrets, the build's store and user namespace). Real podman: tests/integration/
test_debug_real.py."""

from __future__ import annotations

import json
import os
import shlex
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from tui.engine.config import Config
from tui.engine.debug_record import (
    KEEP,
    DebugError,
    FailureLog,
    base_image,
    describe_failure,
    find_record,
    load_records,
    save_record,
)
from tui.engine.debug_shell import arg_env, banner, inner_command, shell_script, typable
from tui.engine.events import CacheHit, Done, Failed, StepDone, StepStarted
from tui.engine.history import History
from tui.engine.plan import DEBUG_DIR, phase_network
from tui.engine.planner import make_plan
from tui.engine.renderings import create_kwargs, podman_run_argv
from tui.engine.session import Engine

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
PROFILES = ["host-ro", "isolated", "project", "host-rw"]
MAP = {"UidMap": ["0:300000:65536"], "GidMap": ["0:300000:65536"]}


pytestmark = pytest.mark.usefixtures("data_home")


def plan_for(profile: str, context: Path = HELLO, **options):
    return make_plan(context, config=Config(), profile=profile, confirmed=True, **options)


def started(stage: int, step: int, instruction: str, steps: int = 5,
            stages: int = 1) -> StepStarted:
    return StepStarted(stage=stage, stages=stages, step=step, steps=steps,
                       instruction=instruction)


def context_with(tmp_path: Path, text: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text(text)
    return ctx


# -- the debug phase: the build phase's isolation, none of its secrets -----------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_the_debug_phase_is_the_build_phases_container_without_its_secrets(tmp_path, profile):
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    plan = plan_for(profile, build_args=(("VERSION", "1"),), secrets=(("tok", str(secret)),))
    debug = plan.debug_phase(["sh", "-c", "true"])
    build = plan.phase("build")
    assert debug.network == "none" and not debug.trusted
    assert [m for m in debug.mounts if m.kind == "secret"] == []
    assert [m for m in build.mounts if m.kind == "secret"]  # (the build phase has them)
    shared = [m for m in build.mounts if m.kind != "secret"]
    assert [m for m in debug.mounts if m.target != DEBUG_DIR] == shared
    [own] = [m for m in debug.mounts if m.target == DEBUG_DIR]
    assert own.source == str(plan.debug_dir) and not own.read_only
    assert own.chown == (profile == "isolated")  # handed to a user-namespaced root only
    kwargs = create_kwargs(plan, debug)
    assert kwargs["network_mode"] == "none" and "secrets" not in kwargs
    assert kwargs["labels"]["buildcage.phase"] == "debug"


def test_only_the_trusted_phases_get_the_host_network():
    assert phase_network("fetch") == phase_network("publish") == "host"
    assert phase_network("build") == phase_network("debug") == "none"


def test_the_shell_command_is_the_plans_rendering_with_the_held_user_namespace():
    plan = plan_for("isolated")
    phase = plan.debug_phase(["sh", "-c", "true"])
    argv = podman_run_argv(plan, phase, idmap=MAP, interactive=True, tty=True)
    assert argv[:5] == ["podman", "run", "--rm", "-i", "-t"]
    assert "--network=none" in argv
    assert "--uidmap=0:300000:65536" in argv and "--gidmap=0:300000:65536" in argv
    assert not any(a.startswith(("--userns", "--secret")) for a in argv)
    assert f"--label=buildcage.build={plan.build_id}" in argv
    assert "--label=buildcage.phase=debug" in argv
    kwargs = create_kwargs(plan, phase, MAP)
    vols = {a.removeprefix("--volume=").split(":")[1] for a in argv if a.startswith("--volume=")}
    assert vols == {m["target"] for m in kwargs["mounts"]} | {
        v["bind"] for v in kwargs["volumes"].values()}
    assert argv[-4:] == [plan.builder_image, "sh", "-c", "true"]
    plain = podman_run_argv(plan, phase)  # as before: a pasted command asks for its own range
    assert "--userns=auto:size=65536" in plain and "-i" not in plain


def test_a_fresh_store_builds_with_layers_only_when_asked():
    plan = replace(plan_for("isolated"), cache_repo="")  # no registry cache
    assert "--layers=false" in plan.bud_argv()
    assert "--layers" in replace(plan, layers=True).bud_argv()
    assert "--layers=false" not in replace(plan, layers=True).bud_argv()
    assert "--layers" in plan_for("host-ro").bud_argv()
    assert "--layers" in plan.debug_rebuild().bud_argv()


def test_a_debug_rebuild_may_pull_the_registry_cache_but_pushes_nothing(tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text("{}")
    plan = replace(plan_for("isolated"), authfile=auth)
    assert plan.cache_repo and plan.pushes_cache
    assert plan.cache_index in " ".join(plan.phase("publish").command)
    rebuild = plan.debug_rebuild()
    assert "--layers" in rebuild.bud_argv() and "--rm=false" not in rebuild.bud_argv()
    assert rebuild.pulls_cache and plan.cache_index in " ".join(rebuild.phase("fetch").command)
    publish = " ".join(rebuild.phase("publish").command)
    assert plan.cache_index not in publish and "buildah push -q" not in publish
    assert not rebuild.push


def test_the_debug_shell_gets_no_registry_credentials_nor_network_with_a_registry_cache(
        tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text("{}")
    plan = replace(plan_for("isolated"), authfile=auth).debug_rebuild()
    assert plan.cache_repo
    fetch = plan.phase("fetch")  # (the trusted phase that pulls the cache has them)
    assert any(m.kind == "secret" and m.target.endswith("/auth.json") for m in fetch.mounts)
    debug = plan.debug_phase(shell_script(plan, "a" * 64, (), False))
    assert debug.network == "none" and not debug.trusted
    assert [m for m in debug.mounts if m.kind == "secret"] == []
    assert "auth" not in " ".join(debug.command) and plan.cache_repo not in " ".join(
        debug.command)
    argv = podman_run_argv(plan, debug, idmap=MAP, interactive=True, tty=True)
    assert "--network=none" in argv and not any(a.startswith("--secret") for a in argv)
    assert not any("auth" in a for a in argv)


# -- which step, which layer -----------------------------------------------------------------------
CF = """ARG BASE=127.0.0.1:5000/buildcage/busybox:latest
ARG GLOBAL=g
FROM ${BASE} AS tools
RUN echo tools > /t
COPY a /a
FROM tools
ARG VERSION=1.0
ARG GLOBAL
ARG LATE
WORKDIR /app
RUN --mount=type=bind,source=src,target=/src --mount=type=secret,id=tok \\
    --mount=type=cache,target=/cache make -C /src VERSION=$VERSION
RUN ["sh", "-c", "exit 3"]
RUN <<EOF
set -e
echo heredoc
EOF
COPY missing /m
"""


def log_of(*events) -> FailureLog:
    log = FailureLog()
    for event in events:
        log.feed(event)
    return log


def test_the_failure_log_names_the_step_that_failed_and_every_layer():
    log = log_of(started(1, 1, "FROM x"), StepDone(stage=1, step=1, layer_id="", duration_s=0),
                 started(1, 2, "RUN a"), CacheHit(stage=1, step=2, layer_id="aaaaaaaaaaa"),
                 StepDone(stage=1, step=2, layer_id="aaaaaaaaaaa", duration_s=0, cached=True),
                 started(1, 3, "RUN b"), StepDone(stage=1, step=3, layer_id="bbbbbbbbbbb",
                                                  duration_s=0),
                 started(1, 4, "RUN c"), Failed(message="exit status 3", step="RUN c"),
                 Failed(message="a consequence"), Done(status="failed"))
    assert log.failed_at is not None and (log.failed_at.step, log.failed_at.instruction) == (
        4, "RUN c")
    assert log.layers == {"1:2": "aaaaaaaaaaa", "1:3": "bbbbbbbbbbb"}


def test_a_failure_outside_the_steps_leaves_nothing_to_debug(tmp_path):
    plan = plan_for("host-ro", context_with(tmp_path, CF))
    log = log_of(started(1, 1, "FROM x"), StepDone(stage=1, step=1, layer_id="", duration_s=0),
                 Failed(message="push failed"), Done(status="failed"))
    assert log.failed_at is None and log.record(plan) is None
    assert log_of(Failed(message="registry down"), Done(status="failed")).record(plan) is None


def test_the_state_before_a_step_is_the_layer_of_the_step_before():
    layers = {"1:2": "aaaaaaaaaaa", "2:2": "ccccccccccc", "2:5": "ddddddddddd"}
    assert base_image(CF, 2, 6, layers, {}) == "ddddddddddd"
    with pytest.raises(DebugError, match="no layer for step 3 of stage 2"):
        base_image(CF, 2, 4, layers, {})


def test_the_first_step_after_from_starts_from_the_base_image_or_stage():
    # Stage 1 starts from an image (its ARG applied, a build argument first).
    assert base_image(CF, 1, 2, {}, {}) == "127.0.0.1:5000/buildcage/busybox:latest"
    assert base_image(CF, 1, 2, {}, {"BASE": "localhost/other:1"}) == "localhost/other:1"
    # Stage 2 starts FROM tools: stage 1's last layer (its step 3, the COPY).
    assert base_image(CF, 2, 2, {"1:3": "eeeeeeeeeee"}, {}) == "eeeeeeeeeee"
    with pytest.raises(DebugError, match="end of stage 1"):
        base_image(CF, 2, 2, {}, {})
    with pytest.raises(DebugError, match="scratch"):
        base_image("FROM scratch\nCOPY a /a\n", 1, 2, {}, {})
    # What goes to buildah's command line is an image or a layer id, never an option.
    with pytest.raises(DebugError, match="not an image reference"):
        base_image("ARG B=--help\nFROM ${B}\nRUN x\n", 1, 2, {}, {})
    with pytest.raises(DebugError, match="no layer"):
        base_image(CF, 2, 6, {"2:5": "--rm"}, {})
    # A stage of only FROM: that stage's own base.
    text = "FROM busybox AS a\nFROM a\nRUN x\n"
    assert base_image(text, 2, 2, {}, {}) == "busybox"


def test_the_failed_run_is_read_from_the_containerfile():
    step = describe_failure(CF, started(2, 6, "RUN --mount=type=bind,source=src,target=/src "
                                              "--mount=type=secret,id=tok --mount=type=cache,"
                                              "target=/cache make -C /src VERSION=$VERSION",
                                        steps=9, stages=2))
    assert step.problem == ""
    assert step.command == "make -C /src VERSION=$VERSION"
    assert step.binds == (("src", "/src"),)
    assert any("secret 'tok'" in n for n in step.notes)
    assert any("cache mount '/cache'" in n for n in step.notes)
    # The ARGs its stage declared before it (a bare ARG takes the global default).
    assert step.args == (("VERSION", "1.0"), ("GLOBAL", "g"), ("LATE", None))
    assert step.where == "step 6/9 of stage 2/2"


def test_exec_form_heredoc_and_other_instructions():
    exec_form = describe_failure(CF, started(2, 7, 'RUN ["sh", "-c", "exit 3"]'))
    assert exec_form.command == "sh -c 'exit 3'"
    heredoc = describe_failure(CF, started(2, 8, "RUN <<EOF"))
    assert heredoc.command == "set -e\necho heredoc\n" and not typable(heredoc.command)
    copy = describe_failure(CF, started(2, 9, "COPY missing /m"))
    assert copy.command == "" and copy.problem == "" and "COPY" in copy.notes[0]
    at_from = describe_failure(CF, started(1, 1, "FROM ${BASE} AS tools"))
    assert "no earlier state" in at_from.problem


def test_an_edited_containerfile_falls_back_to_the_printed_instruction():
    """The file changed since the build: the printed instruction is what ran."""
    step = describe_failure("FROM x\nRUN something else\n",
                            started(1, 2, "RUN --mount=type=bind,target=/w echo was && false"))
    assert step.command == "echo was && false" and step.binds == ((".", "/w"),)


def test_bind_mounts_that_leave_the_context_are_not_given(tmp_path):
    text = ("FROM x\nRUN --mount=type=bind,source=../../etc,target=/e "
            "--mount=type=bind,source=a,target=/x:y --mount=type=bind,from=tools,target=/t "
            "cat /e/shadow\n")
    step = describe_failure(text, started(1, 2, text.splitlines()[1]))
    assert step.binds == (("etc", "/e"),)  # normalized inside the context, as Buildah does
    assert any("'/x:y'" in n for n in step.notes) and any("'/t'" in n for n in step.notes)


# -- the record ------------------------------------------------------------------------------------
def failing_events(instruction: str = "RUN echo about to fail && exit 3"):
    return [started(1, 1, "FROM busybox", steps=4),
            StepDone(stage=1, step=1, layer_id="", duration_s=0),
            started(1, 2, 'RUN echo "preparing" > /prep.txt', steps=4),
            StepDone(stage=1, step=2, layer_id="0123456789a", duration_s=0),
            started(1, 3, instruction, steps=4), Failed(message="exit status 3"),
            Done(status="failed")]


def broken(tmp_path: Path) -> Path:
    return context_with(tmp_path, 'FROM busybox\nRUN echo "preparing" > /prep.txt\n'
                                  "RUN echo about to fail && exit 3\nRUN echo never\n")


def test_a_failed_build_leaves_a_private_record_a_successful_one_none(tmp_path):
    engine = Engine(Config(), History(tmp_path / "h.sqlite3"))
    plan = plan_for("host-ro", broken(tmp_path), build_args=(("A", "1"),))
    sink = engine.recording(plan, lambda event: None)
    for event in failing_events():
        sink(event)
    record = engine.failure(build_id=plan.build_id)
    assert record.base == "0123456789a" and record.failed.command == "echo about to fail && exit 3"
    assert record.store == "project" and record.build_args == (("A", "1"),)
    folder = plan.data_dir / "debug"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / f"{plan.build_id}.json").stat().st_mode) == 0o600
    ok = plan_for("host-ro", broken(tmp_path))
    sink = engine.recording(ok, lambda event: None)
    sink(Done(status="succeeded"))
    assert engine.debug_record(ok.build_id) is None


def test_a_fresh_store_records_no_layer_and_secrets_by_name_only(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret-value")
    plan = plan_for("isolated", broken(tmp_path), secrets=(("tok", str(secret)),))
    log = log_of(*failing_events())
    record = log.record(plan)
    assert record is not None and record.base == "" and record.secret_ids == ("tok",)
    text = record.to_json()
    assert "s3cret" not in text and str(secret) not in text
    assert type(record).from_json(text) == record


def test_records_newest_first_by_context_and_only_the_last_few(tmp_path):
    data = tmp_path / "data" / "buildcage"
    plans = [plan_for("host-ro", broken(tmp_path)) for _ in range(KEEP + 2)]
    for i, plan in enumerate(plans):
        record = log_of(*failing_events()).record(plan, now=1000.0 + i)
        assert record is not None
        save_record(record, plan.data_dir)
    records = load_records(data)
    assert len(records) == KEEP and records[0].build_id == plans[-1].build_id
    assert find_record(data, context=tmp_path / "ctx").build_id == plans[-1].build_id
    with pytest.raises(DebugError, match="no record"):
        find_record(data, context=HELLO)
    (data / "debug" / "junk.json").write_text("{not json")
    assert len(load_records(data)) == KEEP  # an unreadable record is skipped


# -- what the shell gets ---------------------------------------------------------------------------
def test_the_step_args_are_set_in_the_shell_given_values_first():
    step = describe_failure(CF, started(2, 6, "RUN make", steps=9, stages=2))
    env = arg_env(step, {"VERSION": "2.0; rm -rf /", "UNDECLARED": "x"})
    assert env == "VERSION='2.0; rm -rf /'\nGLOBAL=g\n"


def test_the_script_builds_the_working_container_and_removes_it():
    plan = plan_for("host-ro")
    script = shell_script(plan, "0123456789a", (("src", "/src"), ("x y", "rel")), tty=True)
    assert script[:2] == ["sh", "-ec"]
    body = script[2]
    assert f"W=buildcage-{plan.build_id}-debug-working-container" in body
    assert "trap 'buildah rm \"$W\" >/dev/null 2>&1' EXIT" in body
    assert "buildah from --pull=never --quiet --name \"$W\" 0123456789a" in body
    assert "buildah run -t -v /buildcage/debug:/buildcage/debug " \
           "-v /context:/buildcage/context:ro -v /context/src:/src:ro " \
           "-v '/context/x y:'\"${WD%/}\"/rel:ro" in body
    assert "WD=$(buildah inspect" in body
    assert shlex.quote(inner_command(True)) in body
    assert "-t" not in shell_script(plan, "b", (), tty=False)[2].split("buildah run")[1][:4]


def test_the_banner_shows_build_text_escaped_and_the_history_holds_only_one_plain_line(
        tmp_path):
    plan = plan_for("host-ro", broken(tmp_path))
    record = log_of(*failing_events("RUN echo \x1b]0;owned\x07 && exit 3")).record(plan)
    assert record is not None
    text = banner(record, record.failed, record.base, rebuilt=False, tty=True)
    assert "\x1b" not in text and "\\x1b" in text
    assert not typable(record.failed.command) and typable("make && make install")
    assert not typable("echo \u202eevil")


def test_the_debug_dir_of_a_killed_session_is_collected_with_its_container(tmp_path):
    """gc removes the per-build directory a dead debug shell mounted, as it does facts."""
    from tui.engine.orphans import _remove_build_files

    folder = tmp_path / "builds" / "abc" / "debug"
    folder.mkdir(parents=True)
    (folder / "history").write_text("x\n")
    _remove_build_files({"Mounts": [{"Source": str(folder), "Destination": DEBUG_DIR}]})
    assert not (tmp_path / "builds" / "abc").exists()


def test_records_never_follow_a_planted_link(tmp_path):
    plan = plan_for("host-ro", broken(tmp_path))
    record = log_of(*failing_events()).record(plan)
    assert record is not None
    folder = plan.data_dir / "debug"
    folder.mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(target, folder / f"{plan.build_id}.json")
    with pytest.raises(OSError):
        save_record(record, plan.data_dir)
    assert target.read_text() == "keep"
    assert json.loads(record.to_json())["version"] == 1


def test_the_cli_says_why_there_is_no_shell_without_a_traceback(tmp_path, capsys, monkeypatch):
    from tui.cli import main

    assert main(["debug"]) == 2
    assert "no record of a build that failed in a step" in capsys.readouterr().err
    assert main(["debug", str(HELLO), "--last"]) == 2
    assert "not both" in capsys.readouterr().err
    plan = plan_for("host-ro", broken(tmp_path))
    at_from = log_of(started(1, 1, "FROM nowhere"), Failed(message="no such image"),
                     Done(status="failed")).record(plan)
    assert at_from is not None
    save_record(at_from, plan.data_dir)
    assert main(["debug", "--last"]) == 2
    err = capsys.readouterr().err
    assert "no earlier state" in err and "Traceback" not in err
    monkeypatch.setenv("BUILDCAGE_PODMAN_URL", "tcp://127.0.0.1:1")
    record = log_of(*failing_events()).record(plan)
    assert record is not None
    save_record(record, plan.data_dir)
    assert main(["debug", str(tmp_path / "ctx")]) == 2
    assert "on the podman host" in capsys.readouterr().err


def test_a_secret_looking_build_argument_is_kept_by_name_and_asked_for_again(
        tmp_path, capsys) -> None:
    """The record under the data directory never holds its value; a session needs it again
    (the CLI's --build-arg, the TUI passes its build's own), and gets it in its request."""
    from tui.cli import main
    from tui.engine.debug_record import DebugError

    engine = Engine(Config(), History(tmp_path / "h.sqlite3"))
    plan = plan_for("host-ro", broken(tmp_path),
                    build_args=(("A", "1"), ("TOKEN", "hunter2")))
    sink = engine.recording(plan, lambda event: None)
    for event in failing_events():
        sink(event)
    assert b"hunter2" not in (plan.data_dir / "debug" / f"{plan.build_id}.json").read_bytes()
    record = engine.failure(build_id=plan.build_id)
    assert record.build_args == (("A", "1"),) and record.withheld_args == ("TOKEN",)
    with pytest.raises(DebugError, match=r"TOKEN looked like a secret.*--build-arg"):
        engine.debug(record)
    assert record.request(withheld=(("TOKEN", "hunter2"),)).build_args == (
        ("A", "1"), ("TOKEN", "hunter2"))
    assert main(["debug", "--last"]) == 2
    err = capsys.readouterr().err
    assert "--build-arg NAME=VALUE" in err and "Traceback" not in err and "hunter2" not in err


def test_the_debug_sweep_reads_the_stores_container_list_as_hostile(tmp_path):
    """The store's list of working containers may be a RUN step's: its ids go to ``buildah rm``
    (64 hex only), and a link there is not followed."""
    from types import SimpleNamespace

    from tui.engine.debug_shell import DebugSession, working_name

    plan = plan_for("project")
    name = working_name(plan)
    listing = tmp_path / "storage" / "overlay-containers" / "containers.json"
    listing.parent.mkdir(parents=True)
    good = "a" * 64
    listing.write_text(json.dumps([{"id": good, "names": [name]}, {"id": "--all", "names": [name]},
                                   {"id": "b" * 64, "names": ["another"]}, "x",
                                   {"id": "c" * 64, "names": name}]))
    me = SimpleNamespace(plan=plan)
    working_ids = DebugSession._working_ids  # noqa: SLF001 - the sweep's reading, alone
    assert working_ids(me, tmp_path / "storage") == [good]  # type: ignore[arg-type]
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps([{"id": "d" * 64, "names": [name]}]))
    listing.unlink()
    listing.symlink_to(outside)
    assert working_ids(me, tmp_path / "storage") == []  # type: ignore[arg-type]
