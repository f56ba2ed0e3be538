"""WebDataset shards on local disk and SeaweedFS: round trip, rolling, atomicity, bad shards."""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
import webdataset as wds

from storage.errors import ShardError
from storage.masks import instance_to_mask, mask_to_instance
from storage.objectstore import set_default_store
from storage.records import Lineage, Pair, Sample
from storage.shards import ShardReader, ShardWriter, list_shards, read_shard, write_shards


def make_sample(i: int, size: int = 2000) -> Sample:
    mask = np.zeros((6, 9), bool)
    mask[1 : 2 + i % 4, 2:7] = True
    lineage = Lineage(source="ai", model_version="sam3-tiny@3", verifier_versions={"ev": "1"})
    return Sample(
        key=f"img{i:05d}",
        image=os.urandom(size),
        image_ext="jpg",
        width=9,
        height=6,
        pairs=[
            Pair(
                media_id=f"m{i}",
                phrase="red car",
                label="positive",
                is_pixel_exhaustive=False,
                instances=[mask_to_instance(mask, "ai", iscrowd=bool(i % 2))],
                lineage=lineage,
            ),
            Pair(media_id=f"m{i}", phrase="zebra", label="negative", lineage=lineage),
            Pair(media_id=f"m{i}", phrase="stuff", label="dropped", reason="vague"),
        ],
    )


def test_round_trip_and_rolling(object_store):
    samples = [make_sample(i) for i in range(9)]
    shards = write_shards(samples, "phase-1/shards", "train", max_samples=4, store=object_store)
    assert [u.rsplit("/", 1)[1] for u in shards] == [
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
    ]
    assert list_shards("phase-1/shards", "train", object_store) == shards
    back = list(ShardReader(shards, object_store))
    assert [s.key for s in back] == [s.key for s in samples]
    for want, got in zip(samples, back, strict=True):
        assert got == want
        assert np.array_equal(
            instance_to_mask(got.pairs[0].instances[0]),
            instance_to_mask(want.pairs[0].instances[0]),
        )
    with tarfile.open(fileobj=io.BytesIO(object_store.read_bytes(shards[0]))) as tf:
        names = tf.getnames()
        pairs = json.loads(tf.extractfile("img00000.pairs.json").read())
    assert names[:3] == ["img00000.jpg", "img00000.meta.json", "img00000.pairs.json"]
    assert pairs[0]["label"] == "positive" and set(pairs[0]["instances"][0]) >= {
        "rle",
        "bbox",
        "iscrowd",
        "source",
    }
    assert pairs[2] == {**pairs[2], "label": "dropped", "reason": "vague", "instances": []}
    by_bytes = write_shards(samples, "bybytes", "val", max_bytes=3 * 4096, store=object_store)
    assert len(by_bytes) >= 4 and sum(1 for _ in ShardReader(by_bytes, object_store)) == 9


def test_writer_exception_publishes_no_partial_shard(object_store):
    with pytest.raises(RuntimeError):
        with ShardWriter("s", "train", max_samples=2, store=object_store) as w:
            for i in range(3):
                w.write(make_sample(i))
            raise RuntimeError("crash mid-shard")
    assert list_shards("s", "train", object_store) == [object_store.uri("s/train-000000.tar")]
    assert object_store.list("s/") == [object_store.uri("s/train-000000.tar")]


def test_plain_webdataset_reads_and_writes_s3(seaweedfs):
    from storage.objectstore import ObjectStore

    store = ObjectStore(s3=seaweedfs.s3_config())
    set_default_store(store)
    try:
        shards = write_shards(
            [make_sample(i) for i in range(3)], "s3://sam3-test/wds/", "train", store=store
        )
        ds = wds.WebDataset(shards, shardshuffle=False, empty_check=False)
        got = list(ds)
        assert [s["__key__"] for s in got] == ["img00000", "img00001", "img00002"]
        assert json.loads(got[1]["pairs.json"])[1]["label"] == "negative"
        with wds.TarWriter("s3://sam3-test/wds/raw-000000.tar") as tw:  # gopen "wb" via our opener
            tw.write({"__key__": "a", "txt": b"hello"})
        assert [
            s["txt"]
            for s in wds.WebDataset("s3://sam3-test/wds/raw-000000.tar", shardshuffle=False)
        ] == [b"hello"]
    finally:
        set_default_store(None)


def _cut(data: bytes, member: str, extra: int) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        info = tf.getmember(member)
    return data[: info.offset_data + extra]


def test_truncated_shard(object_store):
    (shard,) = write_shards([make_sample(i) for i in range(3)], "t", store=object_store)
    data = object_store.read_bytes(shard)
    cases = {
        "mid-member": (_cut(data, "img00001.jpg", 700), "img00001.jpg", 1),
        "at-boundary": (_cut(data, "img00002.jpg", -512), "img00001.pairs.json", 2),
    }
    for name, (blob, member, n_good) in cases.items():
        object_store.write_bytes(f"bad/{name}.tar", blob)
        with pytest.raises(ShardError) as err:
            list(read_shard(f"bad/{name}.tar", object_store))
        assert err.value.member == member, name
        assert f"bad/{name}.tar" in str(err.value) and member in str(err.value)
        assert "truncated" in str(err.value)
        quarantine: list = []
        got = list(
            read_shard(f"bad/{name}.tar", object_store, skip_bad=True, quarantine=quarantine)
        )
        assert [s.key for s in got] == [f"img{i:05d}" for i in range(n_good)], name
        assert len(quarantine) == 1 and quarantine[0].member == member
        assert (
            quarantine[0].shard.endswith(f"bad/{name}.tar") and "truncated" in quarantine[0].reason
        )


def test_corrupt_members_skip_and_report(object_store):
    (shard,) = write_shards([make_sample(i) for i in range(4)], "c", store=object_store)
    data = bytearray(object_store.read_bytes(shard))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        img = tf.getmember("img00001.jpg")
        pairs = tf.getmember("img00002.pairs.json")
        hdr = tf.getmember("img00003.meta.json")
    data[img.offset_data + 10] ^= 0xFF  # flipped image byte
    data[pairs.offset_data : pairs.offset_data + 2] = b"{{"  # broken JSON
    data[hdr.offset + 148 : hdr.offset + 156] = b"XXXXXXXX"  # header checksum field
    object_store.write_bytes("bad/corrupt.tar", bytes(data))
    with pytest.raises(ShardError, match="img00001.jpg.*crc32"):
        list(read_shard("bad/corrupt.tar", object_store))
    reader = ShardReader([object_store.uri("bad/corrupt.tar"), shard], object_store, skip_bad=True)
    got = [s.key for s in reader]
    assert got == ["img00000", "img00000", "img00001", "img00002", "img00003"]
    assert [(q.member, q.key) for q in reader.quarantine] == [
        ("img00001.jpg", "img00001"),
        ("img00002.pairs.json", "img00002"),
        ("img00003.jpg", "img00003"),
    ]
    assert "corrupt tar header" in reader.quarantine[2].reason


def test_bad_keys_and_sizes(tmp_path):
    with pytest.raises(ValueError, match="key 'a.b'"):
        write_shards([make_sample(0).model_copy(update={"key": "a.b"})], str(tmp_path))
    with pytest.raises(ValueError, match="does not match image size"):
        Sample.model_validate({**make_sample(0).model_dump(), "width": 10})


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_reader_reads_what_tar_tools_write(fmt):
    from storage.tario import iter_members

    names = ["a.txt", "d/" + "x" * 120 + ".bin", "ünï/côdé.json"]
    if fmt == tarfile.USTAR_FORMAT:
        names = names[:1] + ["d/" + "x" * 90 + ".bin"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for i, name in enumerate(names):
            data = os.urandom(100 * i + 1)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("emptydir")
        folder.type = tarfile.DIRTYPE
        tf.addfile(folder)  # non-regular members are skipped
    buf.seek(0)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        want = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers() if m.isreg()]
    assert list(iter_members(buf)) == want
