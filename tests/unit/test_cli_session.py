"""``buildcage session status`` lists this data directory's session builders (no podman call)."""

from __future__ import annotations

import dataclasses
import json

from tui.cli import main
from tui.engine.session_builder import Record
from tui.engine.session_files import make_session_dir


def test_session_status_lists_the_records_of_this_data_directory(tmp_path, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["session", "status"]) == 0
    assert capsys.readouterr().out == "no session builder\n"
    data = tmp_path / "buildcage"
    folder = make_session_dir(data, "s0123456789a")
    record = Record(id="s0123456789a", profile="host-ro", project="web", created=0.0,
                    idle_timeout=600.0, inbox="", kwargs={})
    (folder / "record.json").write_text(json.dumps(dataclasses.asdict(record)))
    (make_session_dir(data, "s0123456789b") / "record.json").write_text("not json")
    assert main(["session", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("session s0123456789a (host-ro, project web): made ")
    assert "s0123456789b" not in out and out.count("\n") == 1
