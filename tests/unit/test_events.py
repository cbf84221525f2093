import json


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
