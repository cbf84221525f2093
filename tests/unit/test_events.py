import json
from pathlib import Path

import pytest


def test_a_log_line_made_the_fast_way_is_the_same_event():
    from tui.engine.events import LogLine

    fast, plain = LogLine.of("STEP 1/2: FROM x", 12.5), LogLine(line="STEP 1/2: FROM x", time=12.5)
    assert fast == plain and hash(fast) == hash(plain)
    assert fast.to_dict() == plain.to_dict() == {"event": "log", "time": 12.5,
                                                 "line": "STEP 1/2: FROM x"}
    assert fast.to_json() == plain.to_json() and repr(fast) == repr(plain)


def test_a_log_lines_own_dict_is_the_generic_one():
    from tui.engine.events import Event, LogLine

    for line in ["", "plain", "tab\there \x1b[31mred\x1b[0m", "\u00e9\udcff", '"quoted" \\']:
        event = LogLine.of(line, 1795979381.9097052)
        assert event.to_dict() == Event.to_dict(event)
        assert list(event.to_dict()) == list(Event.to_dict(event))  # the same key order
        assert event.to_json() == json.dumps(Event.to_dict(event))


def test_events_made_fast_equal_the_real_ones() -> None:
    """The parser's ``made`` events (tui.engine.events.made) are the dataclasses' own, field for
    field: compared on a recorded log against the events built the ordinary way."""
    import dataclasses

    import tui.engine.buildah_output as parser_module
    from tui.engine.buildah_output import parse_lines
    from tui.engine.events import CacheHit, StepDone, StepStarted, made

    log = (Path(__file__).parents[1] / "data" / "buildah")
    lines = [line for f in sorted(log.glob("*.log")) for line in f.read_text().splitlines()]
    fast = parse_lines(lines, step_s=0.5)
    real_made = parser_module.made
    try:
        parser_module.made = lambda cls, **values: cls(**values)  # type: ignore[assignment]
        slow = parse_lines(lines, step_s=0.5)
    finally:
        parser_module.made = real_made
    kinds = {type(e) for e in fast}
    assert {StepStarted, StepDone, CacheHit} <= kinds
    assert fast == slow
    assert [dataclasses.asdict(e) for e in fast] == [dataclasses.asdict(e) for e in slow]
    with pytest.raises(TypeError, match="6 fields, 2 given"):
        made(StepDone, stage=1, step=1)
