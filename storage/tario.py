"""Streaming tar I/O for shards: a USTAR writer and a strict reader that reports where a tar breaks.

Python's `tarfile` in stream mode stops silently at a truncated or corrupt header in mid-archive, so
a cut-short shard would read as a shorter, valid one. `iter_members()` instead requires every header
to be whole with a valid checksum, every member's data to be complete, and the archive to end with
the two zero blocks of an end-of-archive marker; anything else raises TarBreak naming the last good
member. It understands pax (`x`, `g`) and GNU long-name (`L`, `K`) headers, as written by tar tools.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO

BLOCK = 512
_ZERO = b"\0" * BLOCK


class TarBreak(Exception):
    """The archive is truncated or corrupt at or after `member` (None: before the first member)."""

    def __init__(self, member: str | None, message: str):
        self.member = member
        super().__init__(message)


def header(name: str, size: int) -> bytes:
    """A USTAR header block for a regular file (mode 0444, mtime 0, owner bigdata as webdataset)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uname = info.gname = "bigdata"
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError as err:
        raise ValueError(f"tar member name {name!r}: {err}") from None


class TarOut:
    """Write members to a binary stream; `close()` writes the end-of-archive and record padding."""

    def __init__(self, f: BinaryIO):
        self.f, self.pos = f, 0

    def add(self, members: list[tuple[str, bytes]]) -> None:
        heads = [header(name, len(data)) for name, data in members]  # all names checked first
        for head, (_name, data) in zip(heads, members, strict=True):
            pad = -len(data) % BLOCK
            self.f.write(head)
            self.f.write(data)
            if pad:
                self.f.write(b"\0" * pad)
            self.pos += len(head) + len(data) + pad

    def close(self) -> None:
        end = 2 * BLOCK
        end += -(self.pos + end) % tarfile.RECORDSIZE
        self.f.write(b"\0" * end)
        self.pos += end


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    while len(data) < n:
        more = f.read(n - len(data))
        if not more:
            break
        data += more
    return data


def _pax(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data) and data[pos] != 0:
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class _Head:
    """The fields of a plain USTAR header that the reader needs (name, size, type)."""

    __slots__ = ("name", "size", "type")

    def __init__(self, name: str, size: int, type_: bytes):
        self.name, self.size, self.type = name, size, type_

    def isreg(self) -> bool:
        return self.type in tarfile.REGULAR_TYPES


def _octal(field: bytes) -> int:
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _parse(head: bytes):
    """Fast path for plain POSIX ustar headers; anything else goes through tarfile's parser."""
    if head[257:263] == b"ustar\x00" and not head[124] & 0x80:
        try:
            ok = _octal(head[148:156]) == sum(head[:148]) + 256 + sum(head[156:])
            size = _octal(head[124:136])
        except ValueError:
            ok = False
        if ok:
            name = head[:100].split(b"\0", 1)[0]
            prefix = head[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
            kind = head[156:157]
            if kind == tarfile.AREGTYPE and name.endswith(b"/"):
                kind = tarfile.DIRTYPE  # old-style directory entry, as tarfile reads it
            return _Head(name.decode("utf-8", "surrogateescape"), size, kind)
    return tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")


def iter_members(f: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """Yield (name, data) of each regular member; raise TarBreak where the archive is broken."""
    last: str | None = None
    offset = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        head = _read(f, BLOCK)
        if len(head) < BLOCK:
            raise TarBreak(
                last,
                f"truncated: no end-of-archive marker (archive ends at byte {offset + len(head)})",
            )
        if head == _ZERO:
            if _read(f, BLOCK) != _ZERO:
                raise TarBreak(last, f"truncated or corrupt end-of-archive at byte {offset}")
            return
        try:
            info = _parse(head)
        except tarfile.HeaderError as err:
            raise TarBreak(
                last, f"corrupt tar header after this member (byte {offset}): {err}"
            ) from None
        size = int(pax.get("size", info.size)) if info.type not in (b"x", b"g") else info.size
        data = _read(f, size)
        if len(data) < size:
            name = pax.get("path") or long_name or info.name
            raise TarBreak(name, f"truncated in member data ({len(data)} of {size} bytes)")
        pad = -size % BLOCK
        if pad and len(_read(f, pad)) < pad:
            raise TarBreak(info.name, "truncated in member padding")
        offset += BLOCK + size + pad
        if info.type == b"x":
            pax = _pax(data)
            continue
        if info.type == b"g":
            continue
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        name = pax.get("path") or long_name or info.name
        pax, long_name = {}, None
        last = name
        if info.isreg():
            yield name, data
