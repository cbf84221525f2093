"""What a build keeps in memory does not grow with the number of lines it prints.

A million-line RUN step went through ``buildcage build --json`` at 205-257 MB peak RSS
(bench/results.md): the runner read the builder's whole k8s-file log in one ``read()`` once the
builder had exited (``seq 1000000`` ends long before the printer does), then split it into a
list of records and a list of lines. The test streams N and 4N lines through the real pipeline
(the runner's log tail, the Buildah parser, ``Engine.recording`` and ``JsonPrinter``) from a fake
builder that has already written its whole log and exited, the worst case, and compares the
peaks that tracemalloc traced: the same, not four times more.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tui.cli_output import JsonPrinter
from tui.engine.config import Config
from tui.engine.history import History
from tui.engine.logs import LogFileTail
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner
from tui.engine.session import Engine

STAMP = "2026-11-29T06:30:50.199489192+00:00"


class CountingOut(io.TextIOBase):
    """stdout that keeps nothing: counts the JSON lines written and the log lines among them."""

    def __init__(self) -> None:
        self.lines = 0
        self.logs = 0
        self.last = ""

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        self.logs += text.count('{"event": "log"')
        self.last = text
        return len(text)


class ExitedBuilder:
    """A builder container that wrote its whole log (k8s-file, as podman 4.3 does here) and
    exited before the runner read a line of it."""

    id = "id-builder"
    name = "builder"

    def __init__(self, log: Path) -> None:
        self.attrs: dict[str, Any] = {
            "HostConfig": {"LogConfig": {"Type": "k8s-file", "Path": str(log)}}}

    def reload(self) -> None:
        pass

    def start(self) -> None:
        pass

    def wait(self, **_: object) -> int:
        return 0


class Client:
    def __init__(self, builder: ExitedBuilder) -> None:
        outer = self

        class Containers:
            def create(self, **kwargs: Any) -> ExitedBuilder:
                return outer.builder

        self.builder = builder
        self.containers = Containers()


def write_log(path: Path, lines: int) -> None:
    with path.open("wb") as f:
        f.write(f"{STAMP} stdout F STEP 1/2: FROM busybox\n"
                f"{STAMP} stdout F STEP 2/2: RUN seq {lines}\n".encode())
        for i in range(1, lines + 1):
            f.write(f"{STAMP} stdout F {i}\n".encode())


def stream_peak(tmp_path: Path, lines: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Bytes traced at the peak while ``lines`` lines go from the log file to --json output."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Containerfile").write_text("FROM 127.0.0.1:5000/buildcage/busybox:latest\n"
                                       f"RUN seq {lines}\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    plan = make_plan(ctx, config=Config(), profile="host-ro", project="p", confirmed=True)
    log = tmp_path / "builder.log"
    write_log(log, lines)
    engine = Engine(config=Config(), history=History(tmp_path / "history.sqlite3"))
    out = CountingOut()
    client = Client(ExitedBuilder(log))
    runner = BuildRunner(client, plan, engine.recording(plan, JsonPrinter(out)))  # type: ignore[arg-type]
    [build] = [phase for phase in plan.phases() if phase.name == "build"]
    tracemalloc.start()
    try:
        code = runner._run_container(build)  # noqa: SLF001 - one phase, on a fake builder
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0
    assert out.logs == lines + 2  # every line arrived, once
    assert out.last.startswith('{"event": "log"') and f'"line": "{lines}"' in out.last
    return peak


def test_a_builds_memory_does_not_grow_with_its_output(tmp_path, monkeypatch):
    # A small read size, so that both runs span many reads (the real one reads 1 MiB at a time).
    monkeypatch.setattr(LogFileTail, "read_size", 8 * 1024, raising=False)
    lines = 4_000  # about 200 kB of k8s-file log: 25 reads
    small = stream_peak(tmp_path / "n", lines, monkeypatch)
    large = stream_peak(tmp_path / "4n", 4 * lines, monkeypatch)
    # Measured: 0.18 MB for N, 0.06 MB for 4N (the first run pays one-time caches); reading the
    # rest in one go after the builder exited traced 0.8 MB for N and 3.3 MB for 4N.
    assert large < small * 1.3, f"peak {small / 1e6:.1f} MB for {lines} lines, " \
                                f"{large / 1e6:.1f} MB for {4 * lines}"


def test_the_tail_reads_a_bounded_piece_and_never_splits_a_record(tmp_path):
    log = tmp_path / "ctr.log"
    records = [f"{STAMP} stdout F line {i}\n".encode() for i in range(1000)]
    records.insert(500, f"{STAMP} stdout P {'x' * 5000}\n".encode())  # longer than a read
    log.write_bytes(b"".join(records))
    tail = LogFileTail(log)
    tail.read_size = 1024
    got: list[str] = []
    reads = 0
    while piece := tail.read_new():
        assert sum(len(line) for line in piece) < 8 * 1024  # a piece, not the file
        got += piece
        reads += 1
    got += tail.finish()
    assert reads > 40
    assert got == [f"line {i}" for i in range(500)] + ["x" * 5000 + "line 500"] \
        + [f"line {i}" for i in range(501, 1000)]
    assert os.path.getsize(log) == tail.offset
