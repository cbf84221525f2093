"""Reading the headers of a tar stream, and nothing else: a layer's names, types and sizes.

A layer's tar is written by Buildah (trusted), but every name, link target and size in it comes
from what the Containerfile's steps put in the image (hostile). So this reader never extracts
anything, never reads file data into memory (it seeks over it, or reads it in fixed chunks from
a stream that cannot seek), refuses metadata records (PAX, GNU long names) over ``max_meta``
bytes and archives of more than ``max_entries`` entries, and hands back names as bytes: what a
name means is the caller's business. Python's ``tarfile`` is not used: it reads a PAX record of
any size into memory and keeps every member in a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

BLOCK = 512
MAX_META = 1 << 20
"""Largest PAX or GNU long-name record read (1 MiB): a path is at most a few KiB on Linux."""
MAX_ENTRIES = 1_000_000
"""Entries per archive; a layer with more is refused rather than held in memory."""
_CHUNK = 1 << 20

REGULAR = (b"0", b"\0", b"7")
"""Type flags of regular files (``7``: contiguous, read as regular), the only ones with data."""
DIRECTORY, SYMLINK, HARDLINK = b"5", b"2", b"1"
_HEADER_ONLY = (b"1", b"2", b"3", b"4", b"5", b"6")
"""Links, devices, directories and FIFOs: their size field says nothing about data."""


class TarError(ValueError):
    """The stream is not a tar archive this reader accepts; the message says why."""


@dataclass(frozen=True, slots=True)
class TarHeader:
    name: bytes
    """As stored (PAX ``path`` or GNU long name applied); not normalised."""
    size: int
    """Bytes of data of a regular file; 0 for every other type."""
    type: bytes
    """The one-byte type flag (``0`` file, ``5`` directory, ``2`` symlink, ...)."""
    linkname: bytes = b""


def _number(field: bytes, what: str) -> int:
    """An octal field, or GNU's base-256 (first byte 0x80) for values too large for octal."""
    if field[:1] == b"\x80":
        value = 0
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    if field[:1] == b"\xff":
        raise TarError(f"negative {what} in a tar header")
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError(f"bad {what} {text[:20]!r} in a tar header") from None


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156]
    try:
        expected = _number(stored, "checksum")
    except TarError:
        return False
    rest = block[:148] + block[156:]  # (the checksum field counts as 8 spaces)
    unsigned = sum(rest) + 8 * 32
    if expected == unsigned:
        return True
    # Some writers summed signed chars: each byte over 127 counts 256 less. Counted in C (a
    # generator over the bytes was half of reading a 6,000-file layer's headers, profiled).
    high = len(rest) - len(rest.translate(None, _HIGH_BYTES))
    return expected == unsigned - 256 * high


_HIGH_BYTES = bytes(range(128, 256))


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """``LEN key=value\\n`` records; a malformed one ends the archive as an error."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break  # padding some writers leave
        space = data.find(b" ", pos)
        if space < 0:
            raise TarError("malformed PAX record")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarError("malformed PAX record length") from None
        record = data[space + 1:pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") \
                or b"=" not in record:
            raise TarError("malformed PAX record")
        key, _, value = record[:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


class _Reader:
    def __init__(self, stream: IO[bytes], max_meta: int) -> None:
        self.stream = stream
        self.max_meta = max_meta
        self.end = -1
        """The stream's length when it can seek (data is then skipped by seeking), else -1
        (a pipe, a decompressor: data is read and dropped in chunks)."""
        try:
            if stream.seekable():
                position = stream.tell()
                self.end = stream.seek(0, 2)
                stream.seek(position)
        except (AttributeError, OSError, ValueError):
            self.end = -1

    def exact(self, count: int) -> bytes:
        data = self.stream.read(count)
        if len(data) != count:
            raise TarError("the archive ends in the middle of an entry")
        return data

    def skip(self, count: int) -> None:
        if count <= 0:
            return
        if self.end >= 0:
            position = self.stream.tell()
            if position + count > self.end:
                raise TarError("the archive ends in the middle of an entry")
            self.stream.seek(position + count)
            return
        while count:
            data = self.stream.read(min(count, _CHUNK))
            if not data:
                raise TarError("the archive ends in the middle of an entry")
            count -= len(data)

    def meta(self, size: int, what: str) -> bytes:
        if size > self.max_meta:
            raise TarError(f"a {what} record of {size} bytes (at most {self.max_meta} are read)")
        data = self.exact(size)
        self.skip(_padding(size))
        return data


def _padding(size: int) -> int:
    return -size % BLOCK


def read_headers(stream: IO[bytes], *, max_meta: int = MAX_META,
                 max_entries: int = MAX_ENTRIES) -> Iterator[TarHeader]:
    """Every entry's header, in order; raises TarError on anything it cannot vouch for (a bad
    checksum, a truncated archive, an oversized record, too many entries)."""
    reader = _Reader(stream, max_meta)
    pax: dict[bytes, bytes] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    count = 0
    while True:
        block = stream.read(BLOCK)
        if not block or block == b"\0" * BLOCK:
            return  # the end-of-archive blocks (or a writer that left them out)
        if len(block) != BLOCK:
            raise TarError("the archive ends in the middle of a header")
        if not _checksum_ok(block):
            raise TarError("a tar header with a bad checksum (not a tar archive?)")
        kind = block[156:157]
        size = _number(block[124:136], "size")
        if kind in (b"x", b"g"):  # PAX: extended header for the next entry / global
            records = _pax_records(reader.meta(size, "PAX header"))
            if kind == b"x":
                pax.update(records)
            continue
        if kind in (b"L", b"K"):  # GNU long name / long link name of the next entry
            value = _cstring(reader.meta(size, "GNU long name"))
            if kind == b"L":
                long_name = value
            else:
                long_link = value
            continue
        name = _cstring(block[0:100])
        if block[257:262] == b"ustar":
            prefix = _cstring(block[345:500])
            if prefix and block[257:263] == b"ustar\0":  # POSIX ustar; GNU uses it otherwise
                name = prefix + b"/" + name
        linkname = _cstring(block[157:257])
        if long_name is not None:
            name = long_name
        if long_link is not None:
            linkname = long_link
        if b"path" in pax:
            name = pax[b"path"]
        if b"linkpath" in pax:
            linkname = pax[b"linkpath"]
        if b"size" in pax:
            try:
                size = int(pax[b"size"])
            except ValueError:
                raise TarError("malformed PAX size") from None
            if size < 0:
                raise TarError("negative PAX size")
        pax, long_name, long_link = {}, None, None
        count += 1
        if count > max_entries:
            raise TarError(f"more than {max_entries} entries")
        data = 0 if kind in _HEADER_ONLY else size
        reader.skip(data + _padding(data))
        yield TarHeader(name=name, size=size if kind in REGULAR else 0, type=kind,
                        linkname=linkname)
