"""The object store: one small API over local files (file:// and plain paths) and S3 (s3://).

    store = ObjectStore(root="s3://bucket/campaigns/x", s3=S3Config(endpoint_url=...))
    store.write_bytes("phase-1/a.json", b"...")           # atomic
    with store.atomic_writer("phase-1/part-0.parquet") as f:  # published only on clean exit
        f.write(...)
    store.read_bytes(...), store.open_read(...), store.exists(...)
    store.list(prefix), store.delete(...)

Atomic commit: locally a temp file `.<name>.tmp-XXXX` in the same folder, fsynced and renamed over
the final name; on S3 one put_object (or a multipart upload whose completion is the single atomic
step, aborted on failure). An interrupted write leaves nothing under the final name. Every error is
a StorageError naming the URI. `default_store()` is configured from the environment.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from storage import s3 as s3mod
from storage.errors import (
    BucketNotFoundError,
    NotFoundError,
    StorageAuthError,
    StorageError,
)
from storage.uri import Location, parse, resolve

TEMP_MARK = ".tmp-"
_SPOOL_BYTES = 8 * 1024 * 1024


def _is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


class PendingWrite(io.RawIOBase):
    """A write in progress: bytes go to a temp file (local) or a spool (S3) until `commit()`.

    `abort()` discards everything. With `commit_on_close` (open_write, gopen), `close()` commits;
    otherwise (atomic_writer) `close()` only stops writing and the context exit decides.
    """

    def __init__(self, store: ObjectStore, loc: Location, commit_on_close: bool):
        super().__init__()
        self._store, self.loc, self._commit_on_close = store, loc, commit_on_close
        self._done = self._aborted = False
        self._pos = 0
        if loc.scheme == "file":
            folder, base = os.path.split(loc.path)
            try:
                os.makedirs(folder, exist_ok=True)
                fd, self._tmp = tempfile.mkstemp(prefix=f".{base}{TEMP_MARK}", dir=folder)
            except OSError as err:
                raise _local_error(err, loc.uri) from err
            self._fh: BinaryIO = os.fdopen(fd, "wb")
        else:
            self._tmp = None
            self._fh = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)

    @property
    def uri(self) -> str:
        return self.loc.uri

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._aborted:
            return len(data)  # e.g. a tar stream flushing on garbage collection: dropped anyway
        if self._done:
            raise StorageError(self.uri, "write after the object was committed")
        n = self._fh.write(data)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self._done:
            self._fh.flush()

    def close(self) -> None:
        if self._commit_on_close and not self._done:
            self.commit()
        super().close()

    def commit(self) -> str:
        """Publish the bytes under the final name (atomic) and return its URI."""
        if self._done:
            return self.uri
        self._done = True
        try:
            if self._tmp is not None:
                self._fh.flush()
                if self._store.fsync:
                    os.fsync(self._fh.fileno())
                self._fh.close()
                os.replace(self._tmp, self.loc.path)
            else:
                self._fh.seek(0)
                self._store._s3_put(self.loc, self._fh, self._pos)
                self._fh.close()
        except BaseException as err:
            self._discard()
            if isinstance(err, OSError):
                raise _local_error(err, self.uri) from err
            raise
        super().close()
        return self.uri

    def __del__(self) -> None:
        # An unfinished write that is garbage-collected is dropped, never published half-done.
        if not getattr(self, "_done", True):
            self.abort()

    def abort(self) -> None:
        """Throw the pending bytes away; nothing appears under the final name."""
        if not self._done:
            self._done = self._aborted = True
            self._discard()
        super().close()

    def _discard(self) -> None:
        try:
            self._fh.close()
        finally:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.unlink(self._tmp)


def _local_error(err: OSError, uri: str) -> StorageError:
    if isinstance(err, FileNotFoundError):
        return NotFoundError(uri, "no such file")
    if isinstance(err, PermissionError):
        return StorageAuthError(uri, f"permission denied: {err}")
    return StorageError(uri, f"{type(err).__name__}: {err}")


class ObjectStore:
    """Read, write (atomically), list and delete objects under file:// paths and s3:// URIs.

    `root` (optional) makes relative refs resolve under it and refuses refs outside it.
    """

    def __init__(
        self, root: str | None = None, s3: s3mod.S3Config | None = None, fsync: bool = True
    ):
        self.root: Location | None = parse(root) if root is not None else None
        self.s3_config = s3 or s3mod.S3Config()
        self.fsync = fsync
        self._client = None
        self._client_lock = threading.Lock()
        self._buckets_ok: set[str] = set()

    # ---- addressing -------------------------------------------------------------------------
    def locate(self, ref: str | os.PathLike | Location) -> Location:
        if isinstance(ref, Location):
            return resolve(ref.uri, self.root) if self.root else ref
        return resolve(ref, self.root)

    def uri(self, ref: str | os.PathLike) -> str:
        """The absolute URI of `ref` (checked against the root)."""
        return self.locate(ref).uri

    def sub(self, prefix: str) -> ObjectStore:
        """A store rooted at `prefix` (relative to this one's root), sharing the S3 client."""
        child = ObjectStore(self.locate(prefix).uri, self.s3_config, self.fsync)
        child._client, child._buckets_ok = self._client, self._buckets_ok
        return child

    @property
    def endpoint(self) -> str | None:
        return self.s3_config.resolved_endpoint()

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                self._client = s3mod.make_client(self.s3_config)
            return self._client

    def _s3_call(self, loc: Location, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as err:  # noqa: BLE001 - translated below
            if not s3mod.is_client_error(err):
                raise
            translated = s3mod.translate(err, loc.uri, self.endpoint)
            if isinstance(translated, NotFoundError) and not self._bucket_exists(loc):
                translated = BucketNotFoundError(
                    loc.uri, f"bucket {loc.bucket!r} does not exist (endpoint {self.endpoint})"
                )
            raise translated from err

    def _bucket_exists(self, loc: Location) -> bool:
        if loc.bucket in self._buckets_ok:
            return True
        try:
            self.client.head_bucket(Bucket=loc.bucket)
        except Exception as err:  # noqa: BLE001
            if not s3mod.is_client_error(err):
                raise
            t = s3mod.translate(err, loc.uri, self.endpoint)
            if isinstance(t, NotFoundError | BucketNotFoundError):
                return False
            raise t from err
        self._buckets_ok.add(loc.bucket)
        return True

    @staticmethod
    def _need_key(loc: Location) -> None:
        if loc.scheme == "s3" and not loc.path:
            raise StorageError(loc.uri, "an S3 object URI needs a key after the bucket")

    # ---- reading ----------------------------------------------------------------------------
    def open_read(self, ref) -> BinaryIO:
        """A buffered binary stream over the object (streamed from S3, not downloaded first)."""
        loc = self.locate(ref)
        if loc.scheme == "file":
            try:
                return open(loc.path, "rb")
            except OSError as err:
                raise _local_error(err, loc.uri) from err
        self._need_key(loc)
        resp = self._s3_call(loc, self.client.get_object, Bucket=loc.bucket, Key=loc.path)
        return io.BufferedReader(s3mod.BodyStream(resp["Body"], loc.uri, self.endpoint), 1 << 20)

    def read_bytes(self, ref) -> bytes:
        with self.open_read(ref) as f:
            return f.read()

    def exists(self, ref) -> bool:
        loc = self.locate(ref)
        if loc.scheme == "file":
            return os.path.isfile(loc.path)
        self._need_key(loc)
        try:
            self._s3_call(loc, self.client.head_object, Bucket=loc.bucket, Key=loc.path)
        except NotFoundError:
            return False
        return True

    def size(self, ref) -> int:
        loc = self.locate(ref)
        if loc.scheme == "file":
            try:
                return os.path.getsize(loc.path)
            except OSError as err:
                raise _local_error(err, loc.uri) from err
        resp = self._s3_call(loc, self.client.head_object, Bucket=loc.bucket, Key=loc.path)
        return int(resp["ContentLength"])

    def list(self, prefix) -> list[str]:
        """URIs of all objects whose URI starts with `prefix` (recursive, sorted, no temp files)."""
        loc = self.locate(prefix)
        if loc.scheme == "file":
            return self._list_local(loc)
        out: list[str] = []
        key_prefix = loc.path + ("/" if loc.is_dir and loc.path else "")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=loc.bucket, Prefix=key_prefix)
        it = iter(pages)
        while True:
            page = self._s3_call(loc, next, it, None)
            if page is None:
                break
            out.extend(f"s3://{loc.bucket}/{o['Key']}" for o in page.get("Contents", []))
        return sorted(out)

    def _list_local(self, loc: Location) -> list[str]:
        text = loc.path + ("/" if loc.is_dir and loc.path != "/" else "")
        base = text if text.endswith("/") else os.path.dirname(text)
        out = []
        if not os.path.isdir(base):
            return []
        for folder, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(folder, name)
                if full.startswith(text) and not _is_temp_name(name):
                    out.append(Location("file", "", full).uri)
        return sorted(out)

    # ---- writing ----------------------------------------------------------------------------
    @contextmanager
    def atomic_writer(self, ref) -> Iterator[PendingWrite]:
        """`with store.atomic_writer(uri) as f:` publishes only if the block exits cleanly."""
        writer = self.open_write(ref, commit_on_close=False)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def open_write(self, ref, commit_on_close: bool = True) -> PendingWrite:
        """A pending write: `close()` or `commit()` publishes it atomically, `abort()` drops it."""
        loc = self.locate(ref)
        self._need_key(loc)
        if loc.scheme == "s3" and not self._bucket_exists(loc):
            raise BucketNotFoundError(
                loc.uri, f"bucket {loc.bucket!r} does not exist (endpoint {self.endpoint})"
            )
        return PendingWrite(self, loc, commit_on_close)

    def write_bytes(self, ref, data: bytes) -> str:
        with self.atomic_writer(ref) as f:
            f.write(data)
        return f.uri

    def _s3_put(self, loc: Location, fh, size: int) -> None:
        def call(fn, **kw):
            return self._s3_call(loc, fn, Bucket=loc.bucket, Key=loc.path, **kw)

        s3mod.put_stream(self.client, call, fh, size, self.s3_config.part_size)

    def delete(self, ref, missing_ok: bool = True) -> None:
        loc = self.locate(ref)
        if loc.scheme == "file":
            try:
                os.unlink(loc.path)
            except FileNotFoundError:
                if not missing_ok:
                    raise NotFoundError(loc.uri, "no such file") from None
            except OSError as err:
                raise _local_error(err, loc.uri) from err
            return
        self._need_key(loc)
        if not missing_ok and not self.exists(loc):
            raise NotFoundError(loc.uri, "no such object")
        self._s3_call(loc, self.client.delete_object, Bucket=loc.bucket, Key=loc.path)

    def create_bucket(self, bucket: str) -> None:
        loc = parse(f"s3://{bucket}/")
        if not self._bucket_exists(loc):
            self._s3_call(loc, self.client.create_bucket, Bucket=bucket)
            self._buckets_ok.add(bucket)


_default: ObjectStore | None = None
_default_lock = threading.Lock()


def default_store() -> ObjectStore:
    """The process-wide store (no root, S3 settings from the environment); used by gopen's s3://."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ObjectStore()
        return _default


def set_default_store(store: ObjectStore | None) -> None:
    """Replace the process-wide store (None: rebuild from the environment on next use)."""
    global _default
    with _default_lock:
        _default = store
