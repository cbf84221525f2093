

def test_a_log_line_made_the_fast_way_is_the_same_event():
    from tui.engine.events import LogLine

    fast, plain = LogLine.of("STEP 1/2: FROM x", 12.5), LogLine(line="STEP 1/2: FROM x", time=12.5)
    assert fast == plain and hash(fast) == hash(plain)
    assert fast.to_dict() == plain.to_dict() == {"event": "log", "time": 12.5,
                                                 "line": "STEP 1/2: FROM x"}
    assert fast.to_json() == plain.to_json() and repr(fast) == repr(plain)
