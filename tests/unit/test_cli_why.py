"""`buildcage why`: the last build of a context, its steps and the reasons recorded for the ones
that ran, as text (escaped) and JSON; bad input is a message and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.cli import main
from tui.engine.config import Config
from tui.engine.events import CacheHit, Done, Event, StepDone, StepStarted, Unchanged
from tui.engine.history import History
from tui.engine.session import Engine

STEPS = ["FROM scratch", "COPY app /app", "RUN echo \x1b]0;pwned\x07"]


@pytest.fixture(autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def build(engine: Engine, ctx: Path, cached: set[int], **options: object) -> None:
    plan = engine.plan(ctx, profile="project", **options)  # type: ignore[arg-type]  # test options
    events: list[Event] = []
    sink = engine.recording(plan, events.append)
    for n, text in enumerate(STEPS, 1):
        sink(StepStarted(stage=1, stages=1, step=n, steps=len(STEPS), instruction=text))
        layer = "" if n == 1 else f"{n:011x}"
        if n in cached:
            sink(CacheHit(stage=1, step=n, layer_id=layer))
        sink(StepDone(stage=1, step=n, layer_id=layer, duration_s=0.1, cached=n in cached))
    sink(Done(status="succeeded", steps_total=len(STEPS), cache_hits=len(cached)))


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "x").write_text("1")
    (tmp_path / "Containerfile").write_text("\n".join(STEPS) + "\n")
    with History() as history:
        engine = Engine(config=Config(), history=history)
        build(engine, tmp_path, set())
        (tmp_path / "app" / "x").write_text("2")
        build(engine, tmp_path, set())
    return tmp_path


def test_why_json_lists_every_step_with_its_reasons(ctx: Path, capsys) -> None:
    assert main(["why", str(ctx), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["build"] == 2 and report["recorded"] is True
    steps = {s["step"]: s for s in report["steps"]}
    assert steps[1]["outcome"] == "from" and steps[1]["reasons"] == []
    assert steps[2]["reasons"][0]["kind"] == "files_changed"
    assert steps[2]["reasons"][0]["changed"] == [{"path": "app/x", "what": ["content"]}]
    assert steps[2]["compared_with"] == 1
    assert steps[3]["reasons"][0]["kind"] == "earlier_step_missed"


def test_why_text_names_the_change_and_shows_escapes_as_text(ctx: Path, capsys) -> None:
    assert main(["why", str(ctx)]) == 0
    out = capsys.readouterr().out
    assert "build #2 of" in out
    assert "why: files it copies changed since build #1: changed app/x (content)" in out
    assert "\x1b" not in out and "\\x1b]0;pwned" in out


def test_why_without_a_context_is_the_last_build_and_build_picks_one(ctx: Path, capsys) -> None:
    assert main(["why", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["build"] == 2
    assert main(["why", "--build", "1", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["build"] == 1
    assert first["steps"][1]["reasons"][0]["kind"] == "no_earlier_build"


def test_why_filters_by_profile_and_project(ctx: Path, capsys) -> None:
    assert main(["why", str(ctx), "--profile", "project", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["build"] == 2
    assert main(["why", str(ctx), "--project", "elsewhere"]) == 2
    assert "no build of" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["why", "/nonexistent/ctx"], ["why", "--build", "99"],
                                  ["why", "--profile", "project"]])
def test_why_bad_input_is_a_message(args: list[str], capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("buildcage: error: ") and "Traceback" not in err


def test_a_reason_this_version_cannot_read_is_shown_as_such(ctx: Path, capsys) -> None:
    import sqlite3

    with History() as history:
        path = history.path
    db = sqlite3.connect(path)
    db.execute("UPDATE cache_misses SET reasons = ? WHERE build_id = 2 AND step = 2",
               (json.dumps([{"kind": "from_the_future", "x": 1}]),))
    db.commit()
    db.close()
    assert main(["why", str(ctx), "--json"]) == 0
    (reason,) = json.loads(capsys.readouterr().out)["steps"][1]["reasons"]
    assert reason["kind"] == "unknown" and "from_the_future" in reason["checked"][0]


def test_why_of_a_fresh_store_profile_finds_its_builds_by_profile(tmp_path: Path,
                                                                  capsys) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "Containerfile").write_text("\n".join(STEPS) + "\n")
    with History() as history:
        engine = Engine(config=Config(), history=history)
        plan = engine.plan(tmp_path, profile="isolated")
        sink = engine.recording(plan, lambda event: None)
        sink(StepStarted(stage=1, stages=1, step=1, steps=1, instruction="FROM scratch"))
        sink(StepDone(stage=1, step=1, layer_id="", duration_s=0.1))
        sink(Done(status="succeeded"))
    assert main(["why", str(tmp_path), "--profile", "isolated", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "isolated"


def test_an_unchanged_build_says_so_in_why_and_history(tmp_path: Path, capsys) -> None:
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    with History() as history:
        engine = Engine(config=Config(), history=history)
        plan = engine.plan(tmp_path, profile="project")
        sink = engine.recording(plan, lambda event: None)
        sink(Unchanged(build=1, image_id="a" * 64))
        sink(StepStarted(stage=1, stages=1, step=1, steps=1, instruction="FROM scratch"))
        sink(StepDone(stage=1, step=1, layer_id="", duration_s=0.0))
        sink(Done(status="succeeded", image_id="a" * 64, steps_total=1))
    assert main(["why", str(tmp_path)]) == 0
    assert "unchanged: nothing changed since the build before it" in capsys.readouterr().out
    assert main(["why", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] is True
    assert main(["history"]) == 0
    assert " unchanged  " in capsys.readouterr().out
