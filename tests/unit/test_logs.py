"""Reading builder output without losing lines: the k8s-file tail, the frame joiner and the
API poller, on the exact formats podman 4.3 produced here."""

from __future__ import annotations

from tui.engine.logs import ApiLogPoller, LogFileTail, stamped_lines

T1 = "2026-11-29T06:30:50.199489192+00:00"


def test_file_tail_joins_partial_records_and_waits_for_whole_lines(tmp_path):
    log = tmp_path / "ctr.log"
    log.write_bytes(f"{T1} stdout F 1\n{T1} stdout P ab".encode())
    tail = LogFileTail(log)
    assert tail.read_new() == ["1"]
    with open(log, "ab") as f:
        f.write(f"c\n{T1} stdout F def\n{T1} stderr F err\n{T1} stdout F \n".encode())
    assert tail.read_new() == ["abcdef", "err", ""]
    with open(log, "ab") as f:
        f.write(f"{T1} stdout P no newline at the end\n".encode())
    assert tail.read_new() == []
    assert tail.finish() == ["no newline at the end"]


def test_a_partial_line_is_completed_by_its_own_stream_only(tmp_path):
    """conmon reads a container's stdout and stderr apart: a stdout line still partial when a
    whole stderr line comes (``cat TOKEN; echo`` beside a shell's error) was glued to it, one
    line "TOKEN/bin/sh: ..." (seen in a real session build) and an empty one."""
    log = tmp_path / "ctr.log"
    log.write_bytes(f"{T1} stdout P TOKEN-1\n{T1} stderr F /bin/sh: can't create /x\n"
                    f"{T1} stdout F \n{T1} stderr P half\n{T1} stdout P out\n".encode())
    tail = LogFileTail(log)
    assert tail.read_new() == ["/bin/sh: can't create /x", "TOKEN-1"]
    assert tail.finish() == ["half", "out"]


def test_frames_split_at_64k_are_joined_once():
    frames = [b"2026-11-29T06:30:13Z 1040\n", b"2026-11-29T06:30:13Z 104",
              b"2026-11-29T06:30:14Z 1\n", b"2026-11-29T06:30:14Z a\nb\n"]
    assert list(stamped_lines(frames)) == [
        ("2026-11-29T06:30:13Z", "1040"), ("2026-11-29T06:30:13Z", "1041"),
        ("2026-11-29T06:30:14Z", "a"), ("2026-11-29T06:30:14Z", "b")]
    assert list(stamped_lines(frames[:2], final=False)) == [("2026-11-29T06:30:13Z", "1040")]


class GrowingLog:
    """Stands in for a container whose log grows between reads (API semantics: since=int)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes]] = []

    def add(self, second: int, text: bytes) -> None:
        self.records.append((second, text))

    def logs(self, stream: bool, timestamps: bool, since: int) -> list[bytes]:
        from datetime import UTC, datetime

        out = []
        for second, text in self.records:
            if second >= since:
                stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                out.append(stamp.encode() + b" " + text)
        return out


def test_api_poller_delivers_each_line_once_across_reads():
    log = GrowingLog()
    poller = ApiLogPoller(log)
    for i in range(5):
        log.add(1000, f"{i}\n".encode())
    assert poller.read_new() == ["0", "1", "2", "3", "4"]
    log.add(1000, b"5\n")
    log.add(1000, b"half")
    assert poller.read_new() == ["5"]
    log.add(1001, b" done\n")
    log.add(1002, b"7\n")
    assert poller.read_new() == ["half done", "7"]
    assert poller.read_new() == []
    log.add(1002, b"last")
    assert poller.finish() == ["last"]


def test_file_tail_goes_on_from_the_start_when_conmon_empties_the_log(tmp_path):
    """A session container's log has a size limit (``session_plan.LOG_SIZE_MAX``): conmon then
    truncates the file in place and goes on writing at its start (measured on podman 4.3)."""
    log = tmp_path / "ctr.log"
    log.write_bytes(f"{T1} stdout F first\n{T1} stdout F second\n".encode())
    tail = LogFileTail(log)
    assert tail.read_new() == ["first", "second"]
    log.write_bytes(f"{T1} stdout F after\n".encode())  # truncated, then written again
    assert tail.read_new() == ["after"]
