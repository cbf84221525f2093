"""A phase's exit from conmon's exit file (tui.engine.exit_file), and only where it is plainly
conmon's: a fake conmon here is a real process whose command line reads like conmon's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tui.engine.config import Config
from tui.engine.exit_file import ExitFile, conmon_exit_dir, locate
from tui.engine.planner import make_plan
from tui.engine.runner import BuildRunner

CID = "c" * 64
STAMP = "2026-11-30T10:00:00.000000000+00:00"


def fake_conmon(folder: Path, *args: str, name: str = "conmon",
                binary: str = sys.executable) -> subprocess.Popen[bytes]:
    """A process whose command line reads ``FOLDER/NAME ARGS`` (Python reading its program
    from a pipe that stays open), running ``binary``: FOLDER/NAME is a link to it."""
    link = folder / name
    if not link.exists():
        link.symlink_to(binary)
    proc = subprocess.Popen([str(link), "-", *args], executable=sys.executable,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10  # until it has exec'd (before, it is a copy of pytest)
    while not Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(bytes(link) + b"\0"):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return proc


@pytest.fixture
def exits(tmp_path: Path) -> Path:
    folder = tmp_path / "exits"
    folder.mkdir()
    return folder


@pytest.fixture
def conmon(exits: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = fake_conmon(exits.parent, "--api-version", "1", "-c", CID, "-u", CID,
                       "-r", "/usr/bin/runc",
                       "--exit-dir", str(exits), "--exit-command", "/usr/bin/podman",
                       "--exit-command-arg", "--exit-dir", "--exit-command-arg", "/elsewhere")
    yield proc
    proc.kill()
    proc.wait()


def attrs(pid: int, mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"State": {"ConmonPid": pid, "Status": "running"}, "Mounts": mounts or []}


def test_the_exit_directory_is_read_from_the_containers_own_conmon(
        conmon: subprocess.Popen[bytes], exits: Path) -> None:
    assert conmon_exit_dir(conmon.pid, CID) == exits
    found = locate(attrs(conmon.pid), CID, 0)
    assert found is not None and found.path == exits / CID


def test_the_equals_form_of_the_options_too(exits: Path) -> None:
    proc = fake_conmon(exits.parent, f"--cid={CID}", f"--exit-dir={exits}")
    try:
        assert conmon_exit_dir(proc.pid, CID) == exits
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("args, name", [
    (("-c", "d" * 64, "--exit-dir", "/x"), "conmon"),          # another container's conmon
    (("-c", CID, "--exit-dir", "/x"), "python3"),              # not conmon
    (("-c", CID, "--exit-dir", "relative/exits"), "conmon"),   # not absolute
    (("-c", CID), "conmon"),                                   # no exit directory
])
def test_no_exit_file_unless_plainly_this_containers_conmon(args: tuple[str, ...],
                                                            name: str, tmp_path: Path) -> None:
    proc = fake_conmon(tmp_path, *args, name=name)
    try:
        assert conmon_exit_dir(proc.pid, CID) is None
        assert locate(attrs(proc.pid), CID, 0) is None
    finally:
        proc.kill()
        proc.wait()


def test_not_a_process_that_only_calls_itself_conmon(tmp_path: Path, exits: Path) -> None:
    """A RUN step runs as root, as buildcage does under rootful podman: the owner of a process
    does not tell conmon from it; the binary it runs does (and its PID namespace, which a
    container's process never shares with buildcage)."""
    proc = fake_conmon(tmp_path, "-c", CID, "--exit-dir", str(exits), binary="/bin/sh")
    try:  # named /…/conmon, a link to /bin/sh, but running Python
        assert conmon_exit_dir(proc.pid, CID) is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_not_a_folder_others_may_write_into(conmon: subprocess.Popen[bytes], exits: Path,
                                            mode: int) -> None:
    exits.chmod(mode)
    assert locate(attrs(conmon.pid), CID, 0) is None


def test_not_a_folder_named_through_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    proc = fake_conmon(tmp_path, "-c", CID, "--exit-dir", str(tmp_path / "via"))
    try:
        assert conmon_exit_dir(proc.pid, CID) == tmp_path / "via"
        assert locate(attrs(proc.pid), CID, 0) is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("pid", [0, -1, None, True, "123", 2**22 + 12345])
def test_no_exit_file_without_a_live_conmon(pid: Any) -> None:
    assert locate(attrs(pid), CID, 0) is None  # type: ignore[arg-type]


def test_not_where_the_container_can_write(conmon: subprocess.Popen[bytes], exits: Path) -> None:
    writable = [{"Type": "bind", "Source": str(exits.parent), "Destination": "/x", "RW": True}]
    assert locate(attrs(conmon.pid, writable), CID, 0) is None
    read_only = [{"Type": "bind", "Source": str(exits.parent), "Destination": "/x", "RW": False}]
    assert locate(attrs(conmon.pid, read_only), CID, 0) is not None
    elsewhere = [{"Type": "bind", "Source": str(exits.parent / "other"), "RW": True}]
    assert locate(attrs(conmon.pid, elsewhere), CID, 0) is not None


def test_the_code_once_written_for_this_run(exits: Path) -> None:
    since = time.time_ns()
    exit_file = ExitFile(exits / CID, since)
    assert exit_file.code() is None  # running
    (exits / CID).write_text("3")
    assert exit_file.code() == 3


def test_an_earlier_runs_file_is_not_this_runs(exits: Path) -> None:
    (exits / CID).write_text("0")
    old = time.time_ns() - 5_000_000_000
    os.utime(exits / CID, ns=(old, old))
    assert ExitFile(exits / CID, time.time_ns()).code() is None


@pytest.mark.parametrize("text", ["-1", "256", "abc", "", "1 2", "0x1", "99999"])
def test_no_code_from_what_is_not_a_plain_status(exits: Path, text: str) -> None:
    (exits / CID).write_text(text)
    assert ExitFile(exits / CID, 0).code() is None


def test_a_link_is_not_followed(exits: Path, tmp_path: Path) -> None:
    (tmp_path / "forged").write_text("0")
    (exits / CID).symlink_to(tmp_path / "forged")
    assert ExitFile(exits / CID, 0).code() is None


def test_a_folder_is_no_exit_file(exits: Path) -> None:
    (exits / CID).mkdir()
    assert ExitFile(exits / CID, 0).code() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_another_users_file_is_not_taken(exits: Path) -> None:
    (exits / CID).write_text("0")
    os.chown(exits / CID, 65534, 65534)
    assert ExitFile(exits / CID, 0).code() is None


# -- the runner ---------------------------------------------------------------------------------
class SlowWaitBuilder:
    """A builder that exited (its log written, its exit file too) whose podman wait answers only
    when the test lets it: podman's clean-up still holding the container's lock."""

    log_file = True
    """Whether podman keeps its output in a log file here (else it is read through the API)."""

    def __init__(self, log: Path, conmon_pid: int) -> None:
        self.id = CID
        self.name = "b"
        self.released = threading.Event()
        self.started = threading.Event()
        self.attrs: dict[str, Any] = {}
        self._log = log
        self._pid = conmon_pid

    def reload(self) -> None:
        self.attrs = {"HostConfig": {"LogConfig": {"Type": "k8s-file", "Path": str(self._log)}},
                      **attrs(self._pid)}

    def start(self) -> None:
        self.started.set()

    def wait(self, **_: object) -> int:
        self.released.wait(30)
        return 0


def phase_runner(tmp_path: Path, builder: SlowWaitBuilder, on_event: Any = lambda event: None
                 ) -> tuple[BuildRunner, Callable[[], int]]:
    """A runner of a project build on ``builder``, and its build phase to run."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM 127.0.0.1:5000/buildcage/busybox:latest\n")
    plan = make_plan(ctx, config=Config(), profile="project", project="p", confirmed=True)

    class Client:
        class containers:  # noqa: N801 - podman-py's attribute
            @staticmethod
            def create(**_: Any) -> SlowWaitBuilder:
                return builder

    runner = BuildRunner(Client, plan, on_event)  # type: ignore[arg-type]
    runner.use_log_file = builder.log_file
    [build] = [phase for phase in plan.phases() if phase.name == "build"]
    return runner, lambda: runner._run_container(build)  # noqa: SLF001


def started(run: Callable[[], int], builder: SlowWaitBuilder, exits: Path, code: str
            ) -> tuple[threading.Thread, list[int]]:
    """``run`` in a thread; ``code`` written as the exit file once the builder has started,
    dated a second ahead (a file system's coarse clock may stamp a file written at once a few
    ms before the start's fine one: taken for an earlier run's, it would prove nothing)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run()))
    thread.start()
    assert builder.started.wait(10)
    path = exits / CID
    path.write_text(code)
    ahead = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(ahead, ahead))
    assert ExitFile(path, time.time_ns()).code() == int(code)  # a file the runner may take
    return thread, result


@pytest.fixture(autouse=True)
def _data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_a_phase_ends_at_the_exit_file_not_at_podmans_answer(
        tmp_path: Path, exits: Path, conmon: subprocess.Popen[bytes]) -> None:
    log = tmp_path / "builder.log"
    log.write_bytes(f"{STAMP} stdout F STEP 1/2: FROM busybox\n"
                    f"{STAMP} stdout F STEP 2/2: RUN false\n"
                    f"{STAMP} stdout F last line\n".encode())
    builder = SlowWaitBuilder(log, conmon.pid)
    lines: list[str] = []
    runner, run = phase_runner(tmp_path, builder,
                               lambda e: lines.append(e.line) if hasattr(e, "line") else None)
    thread, result = started(run, builder, exits, "7")
    thread.join(10)
    try:
        assert not thread.is_alive(), "the phase waited for podman's answer"
        assert result == [7]
        assert lines[-1] == "last line"  # the log read to its end after the exit
        assert CID in runner._exited  # noqa: SLF001
    finally:
        builder.released.set()
        thread.join()


def test_without_the_file_podmans_answer_decides(tmp_path: Path,
                                                 conmon: subprocess.Popen[bytes]) -> None:
    log = tmp_path / "builder.log"
    log.write_bytes(b"")
    builder = SlowWaitBuilder(log, conmon.pid)
    builder.released.set()
    runner, run = phase_runner(tmp_path, builder)
    assert run() == 0
    assert CID in runner._exited  # noqa: SLF001


class LostServiceBuilder(SlowWaitBuilder):
    """Its first wait finds nobody on podman's socket; the next answers when let."""

    def __init__(self, log: Path, conmon_pid: int) -> None:
        super().__init__(log, conmon_pid)
        self.waits = 0

    def wait(self, **_: object) -> int:
        self.waits += 1
        if self.waits == 1:
            raise ConnectionError("nobody on the socket")
        self.released.wait(30)
        return 0


def test_with_the_service_away_the_phase_waits_for_it_back(
        tmp_path: Path, exits: Path, conmon: subprocess.Popen[bytes],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What comes after a phase (the next phase, the clean-up) needs the service: an exit file
    does not end the phase while the service is away (it did not, before exit files)."""
    log = tmp_path / "builder.log"
    log.write_bytes(b"")
    builder = LostServiceBuilder(log, conmon.pid)
    warnings: list[str] = []
    _, run = phase_runner(tmp_path, builder,
                          lambda e: warnings.append(e.message) if hasattr(e, "message") else None)
    thread, result = started(run, builder, exits, "0")
    thread.join(0.5)
    try:
        assert thread.is_alive(), "the phase ended while the service was away"
    finally:
        builder.released.set()
        thread.join(10)
    assert result == [0]
    assert any("answers again" in w for w in warnings), warnings


def test_without_podmans_log_file_no_exit_file_is_looked_for(
        tmp_path: Path, exits: Path, conmon: subprocess.Popen[bytes]) -> None:
    """The exit file is looked for as often as the log file is read (every 10 ms); output read
    through the API (another log driver) would be asked for as often: podman's wait decides."""
    asked: list[object] = []

    class ApiLogged(SlowWaitBuilder):
        log_file = False

        def logs(self, **kwargs: object) -> list[bytes]:
            asked.append(kwargs)
            return []

    builder = ApiLogged(tmp_path / "none.log", conmon.pid)
    thread, result = started(phase_runner(tmp_path, builder)[1], builder, exits, "7")
    thread.join(0.5)
    try:
        assert thread.is_alive(), "the exit file was read beside an API log source"
    finally:
        builder.released.set()
        thread.join(10)
    assert result == [0]  # podman's answer
    assert len(asked) < 20  # about every poll_interval (0.1 s), not every 10 ms


def test_a_waiter_left_behind_gives_up_at_its_next_setback(context: Path) -> None:
    """After a phase ended at its exit file, its waiter's answer is not needed: a service lost
    later is not waited for (up to five minutes) by a thread nobody listens to."""
    plan = make_plan(context, config=Config(), profile="project", project="p")
    runner = BuildRunner(None, plan, lambda e: None)  # type: ignore[arg-type]

    class Gone:
        def wait(self, **_: object) -> int:
            raise ConnectionError("nobody on the socket")

    over = threading.Event()
    over.set()
    outcome: list[int | BaseException] = []
    notes: list[str] = []
    started = time.monotonic()
    runner._wait(Gone(), outcome, notes, threading.Event(), over)  # noqa: SLF001
    assert time.monotonic() - started < 0.5
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionError) and notes == []
