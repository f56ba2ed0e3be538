"""WebDataset shards of `Sample`s: a rolling writer and a checking reader, on local paths and s3://.

A sample is three tar members sharing its key: `<key>.<ext>` (the original image bytes),
`<key>.pairs.json` (a list of Pair records: phrase, label, reason, exhaustivity flags, instances
{rle, bbox, iscrowd, source, score}, lineage) and `<key>.meta.json` (width, height, image_ext and
the image's sha256, so a corrupt image member is detected). Shards are `<split>-%06d.tar`, rolled at
`max_samples` or `max_bytes`, each committed atomically through the object store.

The reader names the shard and member of any truncation or corruption (ShardError); with
`skip_bad=True` it skips the bad sample (or the rest of a broken shard) and appends a
QuarantineRecord with the reason instead. Importing this module registers an `s3` opener in
`webdataset.gopen.gopen_schemes` (streaming reads; writes buffered and committed atomically on
close), so plain `webdataset.WebDataset("s3://...")` works with the default store's credentials.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import webdataset as wds
from pydantic import ValidationError

from storage.errors import ShardError
from storage.objectstore import ObjectStore, PendingWrite, default_store
from storage.records import Pair, Sample

SHARD_PATTERN = "{split}-%06d.tar"
META_VERSION = 1
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")
_BLOCK = 512


def gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **kw):
    """webdataset gopen handler for s3:// through the default ObjectStore."""
    store = default_store()
    if mode == "rb":
        return store.open_read(url)
    if mode == "wb":
        return store.open_write(url, commit_on_close=True)
    raise ValueError(f"{url}: unsupported mode {mode!r}")


# `webdataset.gopen` the attribute is the function; the module holds the scheme table.
importlib.import_module("webdataset.gopen").gopen_schemes["s3"] = gopen_s3


@dataclass
class QuarantineRecord:
    """A sample (or the rest of a shard) the reader skipped, and why."""

    shard: str
    member: str | None
    key: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _tar_size(n: int) -> int:
    return _BLOCK + (n + _BLOCK - 1) // _BLOCK * _BLOCK


def encode_sample(sample: Sample) -> dict:
    """The webdataset dict (`__key__` + member bytes) for a sample; checks key and extension."""
    if not _KEY_RE.match(sample.key):
        raise ValueError(
            f"sample key {sample.key!r} must be letters, digits, '_', '-' and '/' "
            "(no dots: webdataset splits the key at the first dot)"
        )
    ext = sample.image_ext.lower()
    if not _EXT_RE.match(ext) or ext == "json":
        raise ValueError(f"sample {sample.key!r}: bad image extension {sample.image_ext!r}")
    meta = {
        "v": META_VERSION,
        "width": sample.width,
        "height": sample.height,
        "image_ext": ext,
        "sha256": hashlib.sha256(sample.image).hexdigest(),
        "n_pairs": len(sample.pairs),
    }
    pairs = [p.model_dump(mode="json") for p in sample.pairs]
    return {
        "__key__": sample.key,
        ext: bytes(sample.image),
        "pairs.json": json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode(),
        "meta.json": json.dumps(meta, separators=(",", ":")).encode(),
    }


class ShardWriter:
    """Write Samples to `<prefix>/<split>-%06d.tar`, rolling at max_samples / max_bytes.

    Each shard is published atomically when it is full or on close(); if the `with` block raises,
    the shard in progress is dropped (the ones already closed stay). `shards` lists published URIs.
    """

    def __init__(
        self,
        prefix: str,
        split: str = "train",
        max_samples: int = 1000,
        max_bytes: int = 1 << 30,
        store: ObjectStore | None = None,
        start_shard: int = 0,
    ):
        if not re.match(r"^[A-Za-z0-9_\-]+$", split):
            raise ValueError(f"split {split!r} must be letters, digits, '_' or '-'")
        if max_samples < 1 or max_bytes < 1:
            raise ValueError(
                f"max_samples ({max_samples}) and max_bytes ({max_bytes}) must be >= 1"
            )
        self.store = store or default_store()
        self.prefix = self.store.uri(prefix).rstrip("/")
        self.split, self.max_samples, self.max_bytes = split, max_samples, max_bytes
        self.next_index = start_shard
        self.shards: list[str] = []
        self.samples_written = 0
        self._pending: PendingWrite | None = None
        self._tar: wds.TarWriter | None = None
        self._count = self._bytes = 0

    def shard_uri(self, index: int) -> str:
        return f"{self.prefix}/{SHARD_PATTERN.format(split=self.split) % index}"

    def write(self, sample: Sample) -> None:
        obj = encode_sample(sample)
        size = sum(_tar_size(len(v)) for k, v in obj.items() if k != "__key__")
        if self._tar is not None and (
            self._count >= self.max_samples or self._bytes + size > self.max_bytes
        ):
            self._finish()
        if self._tar is None:
            self._pending = self.store.open_write(
                self.shard_uri(self.next_index), commit_on_close=False
            )
            self._tar = wds.TarWriter(self._pending, encoder=False, mtime=0)
            self.next_index += 1
        self._tar.write(obj)
        self._count += 1
        self._bytes += size
        self.samples_written += 1

    def _finish(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self.shards.append(self._pending.commit())
        self._tar, self._pending, self._count, self._bytes = None, None, 0, 0

    def close(self) -> list[str]:
        self._finish()
        return self.shards

    def abort(self) -> None:
        if self._pending is not None:
            self._pending.abort()
        self._tar, self._pending = None, None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_shards(samples: Iterable[Sample], prefix: str, split: str = "train", **kw) -> list[str]:
    """Write all samples; return the shard URIs."""
    with ShardWriter(prefix, split, **kw) as w:
        for s in samples:
            w.write(s)
    return w.shards


def list_shards(prefix: str, split: str, store: ObjectStore | None = None) -> list[str]:
    """The `<split>-NNNNNN.tar` shards under `prefix`, sorted."""
    store = store or default_store()
    pat = re.compile(rf"/{re.escape(split)}-\d{{6}}\.tar$")
    return [u for u in store.list(store.uri(prefix).rstrip("/") + "/") if pat.search(u)]


class _TailReader(io.RawIOBase):
    """Counts bytes read from a stream and keeps the last `keep` of them (to check the tar end)."""

    def __init__(self, raw, keep: int = 64 * 1024):
        self.raw, self.keep, self.total, self.tail = raw, keep, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.total += n
        self.tail = (self.tail + data)[-self.keep :]
        return n

    def at(self, offset: int, n: int) -> bytes | None:
        start = offset - (self.total - len(self.tail))
        return None if start < 0 else self.tail[start : start + n]


def _decode(shard: str, key: str, members: dict[str, bytes]) -> Sample:
    names = ", ".join(f"{key}.{m}" for m in sorted(members)) or "none"
    if "meta.json" not in members or "pairs.json" not in members:
        missing = "meta.json" if "meta.json" not in members else "pairs.json"
        raise ShardError(shard, f"{key}.{missing}", f"missing member (sample has: {names})")
    try:
        meta = json.loads(members["meta.json"])
        ext, width, height, digest = (
            meta["image_ext"],
            meta["width"],
            meta["height"],
            meta["sha256"],
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ShardError(shard, f"{key}.meta.json", f"corrupt member: {err}") from None
    if ext not in members:
        raise ShardError(shard, f"{key}.{ext}", f"missing image member (sample has: {names})")
    if hashlib.sha256(members[ext]).hexdigest() != digest:
        raise ShardError(
            shard, f"{key}.{ext}", "corrupt member: image bytes do not match their sha256"
        )
    try:
        pairs = [Pair.model_validate(p) for p in json.loads(members["pairs.json"])]
    except (ValueError, TypeError, ValidationError) as err:
        raise ShardError(shard, f"{key}.pairs.json", f"corrupt member: {err}") from None
    try:
        return Sample(
            key=key, image=members[ext], image_ext=ext, width=width, height=height, pairs=pairs
        )
    except ValidationError as err:
        raise ShardError(shard, f"{key}.pairs.json", f"invalid sample: {err}") from None


def read_shard(
    uri: str,
    store: ObjectStore | None = None,
    skip_bad: bool = False,
    quarantine: list[QuarantineRecord] | None = None,
) -> Iterator[Sample]:
    """Yield the Samples of one shard, checking every member and the archive's end.

    Raises ShardError naming the shard and member, or with `skip_bad` records a QuarantineRecord in
    `quarantine` and goes on (after a broken archive structure, with the next shard).
    """
    store = store or default_store()
    uri = store.uri(uri)
    sink = quarantine if quarantine is not None else []

    def fail(err: ShardError, key: str | None) -> None:
        if not skip_bad:
            raise err
        sink.append(QuarantineRecord(uri, err.member, key, err.reason))

    key, members, last = None, {}, None
    with store.open_read(uri) as raw:
        tail = _TailReader(raw)
        try:
            tf = tarfile.open(fileobj=io.BufferedReader(tail, 256 * 1024), mode="r|")
            for info in tf:
                if not info.isreg():
                    continue
                folder, _, fname = info.name.rpartition("/")
                base, _, ext = fname.partition(".")
                k = f"{folder}/{base}" if folder else base
                if k != key:
                    if key is not None:
                        yield from _emit(uri, key, members, fail)
                    key, members = k, {}
                last = info.name
                data = tf.extractfile(info).read()
                if len(data) != info.size:
                    raise tarfile.ReadError(
                        f"unexpected end of data ({len(data)} of {info.size} bytes)"
                    )
                tf.members = []
                members[ext.lower()] = data
            end = tf.offset
            while tail.readinto(bytearray(1 << 16)):
                pass
        except (tarfile.TarError, EOFError, OSError) as err:
            fail(ShardError(uri, last, f"truncated or corrupt shard: {err}"), key)
            return
    trailer = tail.at(end, 2 * _BLOCK)
    broken = None
    if trailer is None or len(trailer) < 2 * _BLOCK or trailer.strip(b"\0"):
        short = trailer is None or len(trailer) < 2 * _BLOCK
        why = "truncated shard" if short else "corrupt tar header"
        where = "after this member " if last else ""
        broken = ShardError(
            uri,
            last,
            f"{why}: no valid tar header or end-of-archive {where}(byte {end} of {tail.total})",
        )
    if key is not None:
        if broken is None:
            yield from _emit(uri, key, members, fail)
        else:  # a cut at a member boundary: the last sample may still be whole
            try:
                yield _decode(uri, key, members)
            except ShardError:
                pass
    if broken is not None:
        fail(broken, key)


def _emit(uri, key, members, fail) -> Iterator[Sample]:
    try:
        sample = _decode(uri, key, members)
    except ShardError as err:
        fail(err, key)
        return
    yield sample


class ShardReader:
    """Iterate Samples over many shards; `quarantine` collects what `skip_bad` skipped."""

    def __init__(
        self, uris: Iterable[str], store: ObjectStore | None = None, skip_bad: bool = False
    ):
        self.uris, self.store, self.skip_bad = list(uris), store, skip_bad
        self.quarantine: list[QuarantineRecord] = []

    def __iter__(self) -> Iterator[Sample]:
        for uri in self.uris:
            yield from read_shard(uri, self.store, self.skip_bad, self.quarantine)
