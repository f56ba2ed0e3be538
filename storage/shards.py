"""WebDataset shards of `Sample`s: a rolling writer and a checking reader, on local paths and s3://.

A sample is three tar members sharing its key: `<key>.<ext>` (the original image bytes),
`<key>.pairs.json` (a list of Pair records: phrase, label, reason, exhaustivity flags, instances
{rle, bbox, iscrowd, source, score}, lineage) and `<key>.meta.json` (width, height, image_ext and
CRC-32s of the image and pairs.json, so a corrupt member is detected). Shards are
`<split>-%06d.tar`, rolled at `max_samples` or `max_bytes`, each committed atomically through the
object store.

The reader names the shard and member of any truncation or corruption (ShardError); with
`skip_bad=True` it skips the bad sample (or the rest of a broken shard) and appends a
QuarantineRecord with the reason instead. Importing this module registers an `s3` opener in
`webdataset.gopen.gopen_schemes` (streaming reads; writes buffered and committed atomically on
close), so plain `webdataset.WebDataset("s3://...")` works with the default store's credentials.
"""

from __future__ import annotations

import importlib
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from pydantic import ValidationError

from storage.errors import ShardError
from storage.objectstore import ObjectStore, PendingWrite, default_store
from storage.records import Pair, Sample
from storage.tario import TarBreak, TarOut, iter_members

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
    pairs = [p.model_dump(mode="json") for p in sample.pairs]
    pairs_json = json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode()
    meta = {
        "v": META_VERSION,
        "width": sample.width,
        "height": sample.height,
        "image_ext": ext,
        "n_pairs": len(sample.pairs),
        "crc32": {ext: zlib.crc32(sample.image), "pairs.json": zlib.crc32(pairs_json)},
    }
    return {
        "__key__": sample.key,
        ext: sample.image,
        "pairs.json": pairs_json,
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
        self._tar: TarOut | None = None
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
            self._tar = TarOut(self._pending)
            self.next_index += 1
        key = obj["__key__"]
        self._tar.add([(f"{key}.{k}", obj[k]) for k in sorted(obj) if k != "__key__"])
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


def _decode(shard: str, key: str, members: dict[str, bytes]) -> Sample:
    names = ", ".join(f"{key}.{m}" for m in sorted(members)) or "none"
    if "meta.json" not in members or "pairs.json" not in members:
        missing = "meta.json" if "meta.json" not in members else "pairs.json"
        raise ShardError(shard, f"{key}.{missing}", f"missing member (sample has: {names})")
    try:
        meta = json.loads(members["meta.json"])
        ext, width, height = meta["image_ext"], meta["width"], meta["height"]
        crcs = {ext: int(meta["crc32"][ext]), "pairs.json": int(meta["crc32"]["pairs.json"])}
    except (ValueError, KeyError, TypeError) as err:
        raise ShardError(shard, f"{key}.meta.json", f"corrupt member: {err!r}") from None
    if ext not in members:
        raise ShardError(shard, f"{key}.{ext}", f"missing image member (sample has: {names})")
    for name, crc in crcs.items():
        if zlib.crc32(members[name]) != crc:
            raise ShardError(
                shard, f"{key}.{name}", "corrupt member: bytes do not match their crc32"
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

    key: str | None = None
    members: dict[str, bytes] = {}
    with store.open_read(uri) as f:
        try:
            for name, data in iter_members(f):
                k, ext = _split_name(name)
                if k != key:
                    if key is not None:
                        yield from _emit(uri, key, members, fail)
                    key, members = k, {}
                members[ext.lower()] = data
        except TarBreak as brk:
            # a cut at a member boundary can leave the last sample whole: keep it if it checks out
            try:
                sample = _decode(uri, key, members) if key is not None else None
            except ShardError:
                sample = None
            if sample is not None:
                yield sample
            fail(
                ShardError(uri, brk.member, str(brk)),
                _split_name(brk.member)[0] if brk.member else key,
            )
            return
    if key is not None:
        yield from _emit(uri, key, members, fail)


def _split_name(name: str) -> tuple[str, str]:
    """webdataset's split of a member name: key = path up to the first dot of the file name."""
    folder, _, fname = name.rpartition("/")
    base, _, ext = fname.partition(".")
    return (f"{folder}/{base}" if folder else base), ext


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
