"""The layer tar reader reads headers only, and refuses what it cannot vouch for: a layer's
names and sizes come from the Containerfile's steps (hostile), its structure from Buildah."""

from __future__ import annotations

import io
import tarfile

import pytest

from tui.engine.tar_headers import TarError, TarHeader, read_headers


def tar_bytes(*members: tuple[str, bytes | None], fmt: int = tarfile.PAX_FORMAT,
              types: dict[str, bytes] | None = None) -> bytes:
    """A tar of ``(name, data)``; data None: a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif types and name in types:
                info.type = types[name]
                info.linkname = data.decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class OneWay(io.RawIOBase):
    """A stream that cannot seek (a pipe): the reader reads data in chunks, never keeps it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        self.largest_read = max(self.largest_read, size)
        return self._data.read(size)


def test_names_sizes_and_types_come_back_as_written() -> None:
    data = tar_bytes(("data/", None), ("data/a.bin", b"x" * 1000), ("data/.wh.b.bin", b""),
                     ("data/link", b"a.bin"), types={"data/link": tarfile.SYMTYPE})
    headers = list(read_headers(io.BytesIO(data)))
    assert headers == [TarHeader(b"data/", 0, b"5"), TarHeader(b"data/a.bin", 1000, b"0"),
                       TarHeader(b"data/.wh.b.bin", 0, b"0"),
                       TarHeader(b"data/link", 0, b"2", b"a.bin")]


def test_hostile_names_are_bytes_never_interpreted() -> None:
    names = ["\x1b]0;pwned\x07", "../../etc/passwd", "a\nb", "é" * 300]
    data = tar_bytes(*((n, b"1") for n in names))
    got = [h.name for h in read_headers(io.BytesIO(data))]
    assert got == [n.encode() for n in names]  # long ones through PAX records


def test_gnu_long_names_are_read() -> None:
    name = "d/" + "n" * 300
    data = tar_bytes((name, b"abc"), fmt=tarfile.GNU_FORMAT)
    assert [(h.name, h.size) for h in read_headers(io.BytesIO(data))] == [(name.encode(), 3)]


def test_a_huge_size_is_read_from_the_header_without_reading_data() -> None:
    # GNU base-256 size (over the 8 GiB octal limit): 2**40 bytes of "data" that are not there.
    info = tarfile.TarInfo("big")
    info.size = 2 ** 40
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(TarError, match="ends in the middle"):
        list(read_headers(io.BytesIO(header)))
    # Over a stream: read in bounded chunks, never the claimed size at once.
    stream = OneWay(header)
    with pytest.raises(TarError, match="ends in the middle"):
        list(read_headers(stream))  # type: ignore[arg-type]
    assert stream.largest_read <= 1 << 20


def test_data_is_skipped_on_streams_that_cannot_seek() -> None:
    data = tar_bytes(("a", b"x" * 5000), ("b", b"y" * 3))
    stream = OneWay(data)
    got = [(h.name, h.size) for h in read_headers(stream)]  # type: ignore[arg-type]
    assert got == [(b"a", 5000), (b"b", 3)]


def test_an_oversized_pax_record_is_refused() -> None:
    data = tar_bytes(("p" * (2 << 20), b""))
    with pytest.raises(TarError, match="PAX header record of"):
        list(read_headers(io.BytesIO(data)))
    assert list(read_headers(io.BytesIO(data), max_meta=4 << 20))[0].name == b"p" * (2 << 20)


def test_too_many_entries_are_refused() -> None:
    data = tar_bytes(*((f"f{i}", b"") for i in range(11)))
    assert len(list(read_headers(io.BytesIO(data), max_entries=11))) == 11
    with pytest.raises(TarError, match="more than 10 entries"):
        list(read_headers(io.BytesIO(data), max_entries=10))


def test_not_a_tar_is_an_error_not_garbage() -> None:
    with pytest.raises(TarError, match="bad checksum"):
        list(read_headers(io.BytesIO(b'{"not": "a tar"}'.ljust(512, b" "))))
    with pytest.raises(TarError, match="middle of a header"):
        list(read_headers(io.BytesIO(b"short")))


def test_empty_archive_has_no_entries() -> None:
    assert list(read_headers(io.BytesIO(tar_bytes()))) == []
    assert list(read_headers(io.BytesIO(b""))) == []


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned-sum", "signed-sum"])
def test_a_checksum_summed_either_way_is_accepted_and_a_wrong_one_is_not(signed: bool) -> None:
    """POSIX sums the header's bytes unsigned; some old writers summed signed chars (a byte
    over 127 counts 256 less). A name with such bytes tells the two apart."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT,
                      encoding="latin-1") as tar:  # the name's bytes as they are
        info = tarfile.TarInfo("caf\xe9-\xff.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    data = bytearray(out.getvalue())
    header = data[:512]
    assert any(b > 127 for b in header)
    rest = bytes(header[:148]) + bytes(header[156:])
    total = sum(rest) + 8 * 32 - (256 * sum(1 for b in rest if b > 127) if signed else 0)
    data[148:156] = b"%06o\0 " % total
    assert [h.name for h in read_headers(io.BytesIO(bytes(data)))][0].startswith(b"caf")
    data[148:156] = b"%06o\0 " % (total + 1)
    with pytest.raises(TarError, match="checksum"):
        list(read_headers(io.BytesIO(bytes(data))))
