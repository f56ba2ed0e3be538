"""The object store on local disk and on a real SeaweedFS S3 server: I/O, atomic commit, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from storage.errors import (
    BucketNotFoundError,
    EndpointUnreachableError,
    InvalidURIError,
    NotFoundError,
    PathTraversalError,
    StorageAuthError,
    StorageError,
    UnknownSchemeError,
)
from storage.objectstore import ObjectStore
from storage.testing_services import free_ports
from storage.uri import join, parse


def test_bytes_streams_exists_list_delete(object_store):
    s = object_store
    assert s.write_bytes("a/one.bin", b"1" * 10).endswith("a/one.bin")
    s.write_bytes("a/two.bin", b"22")
    s.write_bytes("b/three.bin", b"333")
    assert s.read_bytes("a/one.bin") == b"1" * 10
    with s.open_read("b/three.bin") as f:
        assert f.read(1) == b"3" and f.read() == b"33"
    assert s.exists("a/two.bin") and not s.exists("a/none.bin")
    assert s.size("a/two.bin") == 2
    root = s.uri("")
    assert s.list("a/") == [join(root, "a/one.bin"), join(root, "a/two.bin")]
    assert s.list("a/t") == [join(root, "a/two.bin")]
    assert len(s.list("")) == 3
    s.delete("a/one.bin")
    assert not s.exists("a/one.bin")
    s.delete("a/one.bin")  # idempotent
    with pytest.raises(NotFoundError, match="a/one.bin"):
        s.delete("a/one.bin", missing_ok=False)
    with pytest.raises(NotFoundError, match="a/one.bin"):
        s.read_bytes("a/one.bin")


def test_atomic_writer_publishes_only_on_clean_exit(object_store):
    s = object_store
    with s.atomic_writer("out/part-0.bin") as f:
        f.write(b"x" * 1000)
        assert not s.exists("out/part-0.bin"), "visible before commit"
        assert s.list("out/") == []
    assert s.read_bytes("out/part-0.bin") == b"x" * 1000
    with pytest.raises(RuntimeError):
        with s.atomic_writer("out/part-1.bin") as f:
            f.write(b"partial")
            raise RuntimeError("interrupted")
    assert not s.exists("out/part-1.bin")
    assert s.list("out/") == [s.uri("out/part-0.bin")]  # no temp files either
    w = s.open_write("out/part-2.bin")
    w.write(b"abc")
    assert not s.exists("out/part-2.bin")
    w.close()
    assert s.read_bytes("out/part-2.bin") == b"abc"


def test_multipart_upload_is_atomic(seaweedfs):
    s = ObjectStore(root="s3://sam3-test/multipart", s3=seaweedfs.s3_config(part_size=5 * 2**20))
    data = os.urandom(11 * 2**20 + 123)
    with s.atomic_writer("big.bin") as f:
        for i in range(0, len(data), 2**20):
            f.write(data[i : i + 2**20])
        assert not s.exists("big.bin")
    assert s.read_bytes("big.bin") == data


_KILLED_WRITER = """
import os, signal, sys
from storage.objectstore import ObjectStore
from storage.s3 import S3Config
store = ObjectStore(root=sys.argv[1], s3=S3Config())
with store.atomic_writer("victim.bin") as f:
    f.write(b"y" * 3_000_000)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_writer_leaves_nothing_under_final_name(object_store, seaweedfs):
    env = {**os.environ, **seaweedfs.env(), "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), object_store.uri("")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert not object_store.exists("victim.bin")
    assert object_store.list("") == []


def test_bad_uris():
    with pytest.raises(UnknownSchemeError, match="gs://bucket/x"):
        ObjectStore().read_bytes("gs://bucket/x")
    with pytest.raises(UnknownSchemeError, match="ftp://h/x"):
        parse("ftp://h/x")
    with pytest.raises(InvalidURIError, match="control"):
        parse("s3://bucket/a\nb")
    with pytest.raises(PathTraversalError, match=r"\.\./"):
        parse("s3://bucket/../other/x")


def test_traversal_out_of_root(tmp_path):
    s = ObjectStore(root=str(tmp_path / "root"))
    (tmp_path / "secret.txt").write_bytes(b"no")
    for ref in [
        "../secret.txt",
        "a/../../secret.txt",
        str(tmp_path / "secret.txt"),
        (tmp_path / "secret.txt").as_uri(),
    ]:
        with pytest.raises(PathTraversalError) as err:
            s.read_bytes(ref)
        assert ref in str(err.value)
    assert s.uri("a/../b.txt") == (tmp_path / "root" / "b.txt").as_uri()
    sub = s.sub("a")
    assert sub.uri("b.txt") == (tmp_path / "root" / "a" / "b.txt").as_uri()
    with pytest.raises(PathTraversalError, match="root/a"):
        sub.uri("../b.txt")
    s3 = ObjectStore(root="s3://bucket/campaigns/x")
    with pytest.raises(PathTraversalError, match="campaigns/x"):
        s3.uri("../y/z")
    with pytest.raises(PathTraversalError):
        s3.uri("s3://other-bucket/campaigns/x/z")


def test_wrong_credentials(seaweedfs):
    uri = "s3://sam3-test/creds/x.bin"
    bad = ObjectStore(s3=seaweedfs.s3_config(secret_access_key="wrong-secret", max_attempts=1))
    for op in (
        lambda: bad.read_bytes(uri),
        lambda: bad.write_bytes(uri, b"1"),
        lambda: bad.exists(uri),
    ):
        with pytest.raises(StorageAuthError) as err:
            op()
        assert uri in str(err.value) or "s3://sam3-test/" in str(err.value)
    unknown = ObjectStore(s3=seaweedfs.s3_config(access_key_id="nobody", max_attempts=1))
    with pytest.raises(StorageAuthError, match="sam3-test"):
        unknown.list("s3://sam3-test/creds/")


def test_missing_bucket(seaweedfs):
    s = ObjectStore(s3=seaweedfs.s3_config(max_attempts=1))
    uri = "s3://no-such-bucket-here/k.bin"
    for op in (
        lambda: s.read_bytes(uri),
        lambda: s.write_bytes(uri, b"1"),
        lambda: s.exists(uri),
        lambda: s.list("s3://no-such-bucket-here/"),
    ):
        with pytest.raises(BucketNotFoundError, match="no-such-bucket-here"):
            op()


def test_unreachable_endpoint():
    port = free_ports(1)[0]
    from storage.s3 import S3Config

    s = ObjectStore(
        s3=S3Config(
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key_id="a",
            secret_access_key="b",
            max_attempts=1,
            connect_timeout=1,
        )
    )
    uri = "s3://some-bucket/x/y.bin"
    for op in (lambda: s.read_bytes(uri), lambda: s.write_bytes(uri, b"1")):
        with pytest.raises(EndpointUnreachableError) as err:
            op()
        assert "some-bucket" in str(err.value) and str(port) in str(err.value)
        assert isinstance(err.value, StorageError)


def test_env_configuration(seaweedfs, monkeypatch):
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    s = ObjectStore()
    s.write_bytes("s3://sam3-test/env/x.txt", b"env")
    assert s.read_bytes("s3://sam3-test/env/x.txt") == b"env"
