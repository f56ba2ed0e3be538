"""URI parsing: `file://` URIs, plain paths and `s3://bucket/key`, normalised, traversal-checked.

A `Location` is a parsed, normalised URI. `parse()` turns a string or path into one; `resolve()`
does the same relative to a root and refuses anything (`..`, an absolute path, another bucket) that
would leave that root. `join()` appends path parts to a URI string. No I/O happens here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from storage.errors import InvalidURIError, PathTraversalError, UnknownSchemeError

Scheme = Literal["file", "s3"]
SCHEMES: tuple[str, ...] = ("file", "s3")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,253}[a-z0-9]$")


@dataclass(frozen=True)
class Location:
    """A normalised place: `scheme` file or s3, `bucket` ("" for file) and `path`.

    For file, `path` is an absolute POSIX path; for s3 it is the key (no leading slash, "" for the
    bucket itself). `is_dir` records a trailing slash (a prefix rather than an object).
    """

    scheme: Scheme
    bucket: str
    path: str
    is_dir: bool = False

    @property
    def uri(self) -> str:
        tail = "/" if self.is_dir and self.path not in ("", "/") else ""
        if self.scheme == "file":
            return "file://" + quote(self.path, safe="/~") + tail
        return f"s3://{self.bucket}/{self.path}{tail}"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    @property
    def name(self) -> str:
        segs = self.segments
        return segs[-1] if segs else ""

    def child(self, *parts: str) -> Location:
        """This location with relative `parts` appended (checked: they may not climb out of it)."""
        return resolve("/".join(parts), root=self)

    def __str__(self) -> str:
        return self.uri


def _check_chars(uri: str, allow_empty: bool = False) -> None:
    if not uri and not allow_empty:
        raise InvalidURIError(repr(uri), "empty URI")
    bad = [ch for ch in uri if ord(ch) < 0x20 or ord(ch) == 0x7F]
    if bad:
        raise InvalidURIError(repr(uri), f"contains control character {bad[0]!r}")


def _normalise(uri: str, segments: list[str], floor: int) -> tuple[list[str], bool]:
    """Apply `.` and `..`; raise if `..` would climb above the first `floor` segments."""
    out: list[str] = []
    climbed = False
    for seg in segments:
        if seg in ("", "."):
            continue
        if seg == "..":
            if len(out) <= floor:
                climbed = True
                break
            out.pop()
        else:
            out.append(seg)
    return out, climbed


def split_scheme(uri: str) -> tuple[str | None, str]:
    """('s3', 'bucket/key') for 's3://bucket/key'; (None, uri) for a plain path."""
    m = _SCHEME_RE.match(uri)
    if not m:
        return None, uri
    return m.group(1).lower(), uri[m.end() :]


def parse(uri: str | os.PathLike) -> Location:
    """Parse a URI or path into a normalised Location (relative paths are taken from the cwd)."""
    text = os.fspath(uri)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    _check_chars(text)
    scheme, rest = split_scheme(text)
    if scheme is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:/", text) and not text.startswith("/"):
            raise UnknownSchemeError(
                text, f"malformed scheme in {text!r} (did you mean '{text.split(':')[0]}://'?)"
            )
        path = os.path.abspath(text) if not text.startswith("/") else text
        return _local(text, path, text.endswith("/"))
    if scheme == "file":
        host, _, path = rest.partition("/")
        if host not in ("", "localhost"):
            raise InvalidURIError(text, f"file:// URI with a host {host!r} is not supported")
        return _local(text, "/" + unquote(path), path.endswith("/"))
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise InvalidURIError(text, "s3:// URI has no bucket")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise InvalidURIError(text, f"invalid S3 bucket name {bucket!r}")
        segs, climbed = _normalise(text, key.split("/"), 0)
        if climbed:
            raise PathTraversalError(text, "'..' climbs out of the bucket")
        return Location("s3", bucket, "/".join(segs), is_dir=key.endswith("/") or not segs)
    raise UnknownSchemeError(
        text, f"unknown URI scheme {scheme!r}; supported: file://, s3:// and plain paths"
    )


def _local(original: str, path: str, is_dir: bool) -> Location:
    segs, climbed = _normalise(original, path.split("/"), 0)
    if climbed:
        raise PathTraversalError(original, "'..' climbs above the filesystem root")
    return Location("file", "", "/" + "/".join(segs), is_dir=is_dir or not segs)


def is_under(loc: Location, root: Location) -> bool:
    """True when `loc` is `root` itself or inside it (same scheme and bucket, segment prefix)."""
    if (loc.scheme, loc.bucket) != (root.scheme, root.bucket):
        return False
    rs = root.segments
    return loc.segments[: len(rs)] == rs


def resolve(ref: str | os.PathLike, root: Location | None = None) -> Location:
    """Resolve `ref` against `root`: relative refs join under it, absolute ones must lie in it.

    Raises PathTraversalError naming the ref when the result would be outside the root.
    """
    if root is None:
        return parse(ref)
    text = os.fspath(ref)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    _check_chars(text, allow_empty=True)
    scheme, _ = split_scheme(text)
    if scheme is not None or text.startswith("/"):
        loc = parse(text)
        if not is_under(loc, root):
            raise PathTraversalError(text, f"is outside the root {root.uri}")
        return loc
    floor = len(root.segments)
    segs, climbed = _normalise(text, root.segments + text.split("/"), floor)
    if climbed:
        raise PathTraversalError(text, f"'..' climbs out of the root {root.uri}")
    is_dir = text.endswith("/") or text in ("", ".")
    if root.scheme == "file":
        return Location("file", "", "/" + "/".join(segs), is_dir=is_dir)
    return Location("s3", root.bucket, "/".join(segs), is_dir=is_dir)


def join(base: str, *parts: str) -> str:
    """Append relative parts to a URI string ('s3://b/x', 'y', 'z.tar' -> 's3://b/x/y/z.tar')."""
    return resolve("/".join(parts), root=parse(base)).uri
