"""What each layer holds, and dive's efficiency measures, from the layers' tar headers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tui.engine.errors import UserError
from tui.engine.layers import (
    Entry,
    LayerInput,
    LayerReport,
    Waste,
    analyze,
    change_tree,
    entry_from_header,
    instructions_for,
    parse_max_waste,
    shown_path,
)
from tui.engine.tar_headers import TarHeader


def f(path: str, size: int) -> Entry:
    return Entry(path=path, size=size, is_dir=False)


def d(path: str) -> Entry:
    return Entry(path=path, size=0, is_dir=True)


def wh(path: str) -> Entry:
    return Entry(path=path, size=0, is_dir=False, whiteout=True)


BASE = [d("/etc"), f("/etc/group", 27), f("/etc/passwd", 71), d("/bin"), f("/bin/sh", 900),
        d("/proc")]
BASE_BYTES = 27 + 71 + 900


def layered() -> LayerReport:
    """The integration test's context, as Buildah writes it with a layer per step."""
    return analyze("a" * 64, [
        LayerInput("sha256:0", BASE, "ADD file:ceee in /"),
        LayerInput("sha256:1", [d("/data"), f("/data/a.bin", 1000)], "COPY a.bin /data/a.bin"),
        LayerInput("sha256:2", [d("/data"), f("/data/b.bin", 3000), f("/data/c.bin", 500),
                                d("/etc"), f("/etc/hosts", 0)], "RUN write b and c"),
        LayerInput("sha256:3", [d("/data"), f("/data/a.bin", 2000), wh("/data/b.bin")],
                   "RUN rewrite a, remove b", ("ENV X=1",)),
    ])


def kinds(report: LayerReport, index: int, kind: str) -> dict[str, int]:
    return {c.path: c.size for c in report.layers[index].changes if c.kind == kind}


def test_each_layer_says_what_it_added_changed_and_removed() -> None:
    report = layered()
    assert kinds(report, 0, "added") == {"/etc": 0, "/etc/group": 27, "/etc/passwd": 71,
                                         "/bin": 0, "/bin/sh": 900, "/proc": 0}
    assert kinds(report, 1, "added") == {"/data": 0, "/data/a.bin": 1000}
    assert kinds(report, 2, "added") == {"/data/b.bin": 3000, "/data/c.bin": 500,
                                         "/etc/hosts": 0}
    assert kinds(report, 2, "changed") == {}  # directories only touched are no change
    assert kinds(report, 3, "changed") == {"/data/a.bin": 2000}
    assert kinds(report, 3, "removed") == {"/data/b.bin": 3000}  # what it held below
    assert kinds(report, 3, "added") == {}
    assert [layer.size for layer in report.layers] == [BASE_BYTES, 1000, 3500, 2000]
    assert report.layers[3].instruction == "RUN rewrite a, remove b"
    assert report.layers[3].folded == ("ENV X=1",)


def test_waste_and_efficiency_follow_dive() -> None:
    report = layered()
    # dive: every path seen in two or more layers wastes all its copies (a: 1000 + 2000), a
    # deleted file the bytes it had (b: 3000 + 0 for the whiteout).
    assert report.wasted_bytes == 6000
    assert report.inefficiencies == (Waste("/data/a.bin", 2, 3000),
                                      Waste("/data/b.bin", 2, 3000))
    # dive: user size is every layer but the first; its percent is wasted / user size.
    assert report.user_size == 6500
    assert report.wasted_percent == pytest.approx(100 * 6000 / 6500)
    # dive: sum over paths of the smallest copy / sum over paths of every copy.
    assert Fraction(report.efficiency).limit_denominator(10 ** 7) == \
        Fraction(BASE_BYTES + 1000 + 0 + 500, BASE_BYTES + 3000 + 3000 + 500)
    assert report.total_size == BASE_BYTES + 6500


def test_a_deleted_directory_is_removed_with_everything_in_it() -> None:
    report = analyze("b" * 64, [
        LayerInput("l0", [d("/d"), f("/d/x", 10), d("/d/e"), f("/d/e/y", 20)]),
        LayerInput("l1", [wh("/d")]),
    ])
    assert kinds(report, 1, "removed") == {"/d": 30}
    # dive sizes a directory's whiteout by what it held, but the directory itself was no leaf
    # below (it had files), so it is one copy: not counted as waste, as dive does.
    assert report.wasted_bytes == 0 and report.efficiency == 1.0


def test_an_opaque_directory_removes_what_it_hid() -> None:
    report = analyze("c" * 64, [
        LayerInput("l0", [d("/o"), f("/o/p", 5), f("/o/q", 7), d("/o/s"), f("/o/s/t", 1)]),
        LayerInput("l1", [d("/o"), Entry("/o", 0, True, opaque=True), d("/o/s"),
                          f("/o/s/u", 2), f("/o/q", 9)]),
    ])
    assert kinds(report, 1, "removed") == {"/o/p": 5, "/o/s/t": 1}
    assert kinds(report, 1, "changed") == {"/o/q": 9}
    assert kinds(report, 1, "added") == {"/o/s/u": 2}
    # dive ignores opaque markers in its measures: /o/q is seen twice, the rest once.
    assert report.inefficiencies == (Waste("/o/q", 2, 16),)


def test_a_file_removed_then_added_again_is_added_and_all_three_copies_count() -> None:
    report = analyze("e" * 64, [
        LayerInput("l0", [f("/a", 100)]),
        LayerInput("l1", [wh("/a")]),
        LayerInput("l2", [f("/a", 40)]),
    ])
    assert kinds(report, 2, "added") == {"/a": 40}
    assert report.inefficiencies == (Waste("/a", 3, 140),)
    assert report.efficiency == 0.0  # the smallest copy is the whiteout's 0 bytes
    assert report.wasted_percent == pytest.approx(100 * 140 / 40)


def test_an_image_of_one_layer_wastes_nothing() -> None:
    report = analyze("f" * 64, [LayerInput("l0", [f("/a", 5)])])
    assert (report.wasted_bytes, report.user_size, report.wasted_percent) == (0, 0, 0.0)
    assert report.efficiency == 1.0


def test_the_tree_is_largest_first_and_filters_by_kind() -> None:
    report = layered()
    tree = change_tree(report.layers[2])
    assert [(n.name, n.size) for n in tree.children] == [("data", 3500), ("etc", 0)]
    assert [(n.name, n.size, n.kind) for n in tree.children[0].children] == [
        ("b.bin", 3000, "added"), ("c.bin", 500, "added")]
    removed = change_tree(report.layers[3], {"removed"})
    assert [(n.path, n.size) for n in removed.children[0].children] == [("/data/b.bin", 3000)]
    assert change_tree(report.layers[3], {"added"}).children == ()
    assert report.layers[3].counts == {"added": (0, 0), "changed": (1, 2000),
                                       "removed": (1, 3000)}


def test_entries_from_headers_are_normalised_inside_the_image() -> None:
    assert entry_from_header(TarHeader(b"./data/", 0, b"5")) == d("/data")
    assert entry_from_header(TarHeader(b"../../etc/passwd", 7, b"0")) == f("/etc/passwd", 7)
    assert entry_from_header(TarHeader(b"a/.wh.b", 0, b"0")) == wh("/a/b")
    assert entry_from_header(TarHeader(b"a/.wh..wh..opq", 0, b"0")) == \
        Entry("/a", 0, True, opaque=True)
    assert entry_from_header(TarHeader(b"./", 0, b"5")) is None  # the root itself
    assert entry_from_header(TarHeader(b"l", 0, b"1", b"x")) == f("/l", 0)  # a hard link
    raw = entry_from_header(TarHeader(b"bad\xff\x1b[2J", 1, b"0"))
    assert raw is not None and shown_path(raw.path) == "/bad\\xff\\x1b[2J"


def test_shown_paths_cannot_drive_the_terminal() -> None:
    assert shown_path("/a\nb\tc\x1b]0;t\x07\u202e") == "/a\\nb\\tc\\x1b]0;t\\x07\\u202e"
    assert shown_path("/plain/ascii") == "/plain/ascii"


def test_instructions_follow_the_history_entries_that_made_layers() -> None:
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:ce in /"},
        {"created_by": "/bin/sh -c #(nop) ENV A=1", "empty_layer": True},
        {"created_by": "/bin/sh -c #(nop) COPY file:66 in /a "},
        {"created_by": "/bin/sh -c echo hi", "empty_layer": True},
        {"created_by": "/bin/sh -c rm x"},
    ]
    assert instructions_for(history, 3) == [
        ("ADD file:ce in /", ()), ("COPY file:66 in /a", ("ENV A=1",)),
        ("RUN rm x", ("RUN echo hi",))]
    assert instructions_for(history[:1], 2) == [("ADD file:ce in /", ()), ("(no history)", ())]
    assert instructions_for("not a list", 1) == [("(no history)", ())]  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "over", "under"), [
    ("6000", 6001, 6000), ("5999", 6000, 5999), ("6kB", 6001, 6000), ("1KiB", 1025, 1024),
    ("2MB", 2_000_001, 2_000_000), ("0", 1, 0),
])
def test_max_waste_in_bytes(text: str, over: int, under: int) -> None:
    limit = parse_max_waste(text)
    assert limit.exceeded(wasted_bytes=over, wasted_percent=0.0)
    assert not limit.exceeded(wasted_bytes=under, wasted_percent=0.0)


def test_max_waste_in_percent_of_what_the_build_added() -> None:
    limit = parse_max_waste("92%")
    assert limit.exceeded(wasted_bytes=1, wasted_percent=92.31)
    assert not limit.exceeded(wasted_bytes=10 ** 9, wasted_percent=92.0)
    assert "92%" in limit.describe()


@pytest.mark.parametrize("text", ["", "-1", "abc", "5 %", "101%", "1e3", "10XB", "nan%"])
def test_bad_max_waste_is_a_user_error(text: str) -> None:
    with pytest.raises(UserError, match="--max-waste"):
        parse_max_waste(text)


def test_a_report_survives_json() -> None:
    report = layered()
    assert LayerReport.from_dict(report.to_dict()) == report


def test_absurdly_deep_paths_neither_recurse_nor_break_the_tree() -> None:
    # 1500 levels (past Python's recursion limit; a real path stops near 2000: PATH_MAX).
    deep = "/" + "/".join("d" for _ in range(1500))
    entries = [d("/d" * (n + 1)) for n in range(1500)]
    report = analyze("9" * 64, [LayerInput("l0", [*entries, f(deep + "/x", 7)]),
                                LayerInput("l1", [wh("/d")])])
    assert kinds(report, 1, "removed") == {"/d": 7}
    tree = change_tree(report.layers[0], {"added"})
    depth, node = 0, tree
    while node.children:  # made a level at a time: nothing recurses
        node, depth = node.children[0], depth + 1
    assert (depth, node.name, node.size, node.kind) == (1501, "x", 7, "added")
    assert tree.size == 7 and tree.children[0].kind == "added" and tree.children[0].is_dir


def test_many_files_are_analysed_in_reasonable_memory_and_order() -> None:
    files = [f(f"/many/f{i:06d}", i % 7) for i in range(50_000)]
    report = analyze("8" * 64, [LayerInput("l0", [d("/many"), *files]),
                                LayerInput("l1", [wh("/many")])])
    assert report.layers[0].counts["added"] == (50_000, sum(i % 7 for i in range(50_000)))
    assert kinds(report, 1, "removed") == {"/many": sum(i % 7 for i in range(50_000))}
    top = change_tree(report.layers[0]).children[0].children
    assert [n.size for n in top[:3]] == [6, 6, 6] and top[-1].size == 0


def test_odd_markers_at_the_root_do_not_break_the_analysis() -> None:
    assert entry_from_header(TarHeader(b".wh.", 0, b"0")) is None
    root_opaque = entry_from_header(TarHeader(b".wh..wh..opq", 0, b"0"))
    assert root_opaque == Entry("/", 0, True, opaque=True)
    report = analyze("6" * 64, [LayerInput("l0", [f("/a", 3), d("/b"), f("/b/c", 4)]),
                                LayerInput("l1", [root_opaque, f("/z", 1)]),
                                LayerInput("l2", [wh("/a")])])
    assert kinds(report, 1, "removed") == {"/a": 3, "/b": 4}
    assert kinds(report, 2, "removed") == {"/a": 0}  # hidden already


@pytest.mark.parametrize(("created_by", "shown"), [
    ('|2 GREETING=hello TOKEN=hunter2 /bin/sh -c test -n "$TOKEN"',
     '|2 GREETING=hello TOKEN=(secret: not shown) /bin/sh -c test -n "$TOKEN"'),
    ("|2 API_KEY=hunter2 V=1 /bin/sh -c id", "|2 API_KEY=(secret: not shown) V=1 /bin/sh -c id"),
    # A value with " X=" in it: which parts are values is not known, all after it is hidden.
    ("|2 A=1 TOKEN=hun ter=2 /bin/sh -c id", "|2 A=1 TOKEN=(secret: not shown) /bin/sh -c id"),
    ("|1 TOKEN=hunter2 echo hi", "|1 TOKEN=(secret: not shown) echo hi"),
    ("|1 V=hunter2 /bin/sh -c id", "|1 V=hunter2 /bin/sh -c id"),  # not named like a secret
    ("/bin/sh -c #(nop) ARG TOKEN", "ARG TOKEN"),
])
def test_secret_looking_build_arguments_in_image_history_are_hidden(created_by: str,
                                                                    shown: str) -> None:
    from tui.engine.layers import instruction_text

    assert instruction_text(created_by) == shown
