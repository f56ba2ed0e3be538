"""Storage benchmark: ratios only, measured side by side in one run on the same disk / server.

1. WebDataset shard write and read (ShardWriter / ShardReader, with fsync, CRC-32 and record
   validation) against a raw sequential write / read of the same bytes to one file on the same disk.
   Page cache is dropped for the files involved (posix_fadvise DONTNEED) before each read.
2. S3 put throughput through ObjectStore.write_bytes (atomic) against raw boto3 put_object, on a
   SeaweedFS server started here (storage.testing_services), small and large objects.
Rounds alternate between the two sides and the best round of each is compared. The figure is last.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from storage.masks import mask_to_instance  # noqa: E402
from storage.objectstore import ObjectStore  # noqa: E402
from storage.records import Pair, Sample  # noqa: E402
from storage.shards import ShardReader, write_shards  # noqa: E402
from storage.testing_services import start_seaweedfs  # noqa: E402

ROUNDS = 3
N_SAMPLES, IMAGE_BYTES = 120, 256 * 1024  # ~31 MB of shards
CHUNK = 1 << 20


def _samples() -> list[Sample]:
    rng = np.random.default_rng(0)
    mask = np.zeros((48, 64), bool)
    mask[5:30, 10:50] = True
    inst = mask_to_instance(mask, "ai")
    return [
        Sample(
            key=f"img{i:06d}",
            image=rng.bytes(IMAGE_BYTES),
            image_ext="jpg",
            width=64,
            height=48,
            pairs=[
                Pair(media_id=f"m{i}", phrase="cat", label="positive", instances=[inst]),
                Pair(media_id=f"m{i}", phrase="dog", label="negative"),
            ],
        )
        for i in range(N_SAMPLES)
    ]


def _drop_cache(paths: list[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _raw_write(path: str, blobs: list[bytes]) -> None:
    with open(path, "wb") as f:
        for blob in blobs:
            for i in range(0, len(blob), CHUNK):
                f.write(blob[i : i + CHUNK])
        f.flush()
        os.fsync(f.fileno())


def _raw_read(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            n += len(chunk)
    return n


def bench_shards(work: str) -> tuple[float, float]:
    samples = _samples()
    store = ObjectStore(root=work, fsync=True)
    w_shard, w_raw, r_shard, r_raw = [], [], [], []
    for r in range(ROUNDS):
        prefix = f"shards-{r}"
        t = time.perf_counter()
        shards = write_shards(samples, prefix, "train", max_bytes=8 << 20, store=store)
        w_shard.append(time.perf_counter() - t)
        paths = [store.locate(u).path for u in shards]
        blobs = [Path(p).read_bytes() for p in paths]
        total = sum(len(b) for b in blobs)
        raw = os.path.join(work, f"raw-{r}.bin")
        t = time.perf_counter()
        _raw_write(raw, blobs)
        w_raw.append(time.perf_counter() - t)
        del blobs
        _drop_cache(paths + [raw])
        t = time.perf_counter()
        assert sum(1 for _ in ShardReader(shards, store)) == N_SAMPLES
        r_shard.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert _raw_read(raw) == total
        r_raw.append(time.perf_counter() - t)
        for p in paths + [raw]:
            os.unlink(p)
    # same bytes on both sides, so the MB/s ratio is the inverse time ratio
    return min(w_raw) / min(w_shard), min(r_raw) / min(r_shard)


def bench_s3() -> dict[str, float]:
    out = {}
    with start_seaweedfs(buckets=("bench",)) as server:
        store = ObjectStore(s3=server.s3_config())
        client = store.client  # the same boto3 client on both sides
        store.write_bytes("s3://bench/warmup", b"x")
        for label, size, count in (("16 KiB", 16 << 10, 150), ("4 MiB", 4 << 20, 12)):
            data = os.urandom(size)
            ours, raw = [], []
            for r in range(ROUNDS):
                t = time.perf_counter()
                for i in range(count):
                    client.put_object(Bucket="bench", Key=f"raw/{r}/{i}", Body=data)
                raw.append(time.perf_counter() - t)
                t = time.perf_counter()
                for i in range(count):
                    store.write_bytes(f"s3://bench/store/{r}/{i}", data)
                ours.append(time.perf_counter() - t)
            out[label] = min(raw) / min(ours)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sam3-bench-") as work:
        write_ratio, read_ratio = bench_shards(work)
    s3 = bench_s3()
    print(f"shard write MB/s / raw sequential write MB/s (same bytes, disk): {write_ratio:.2f}")
    print(f"shard read  MB/s / raw sequential read  MB/s (same bytes, disk): {read_ratio:.2f}")
    for label, ratio in s3.items():
        print(f"S3 put {label}: ObjectStore.write_bytes / raw boto3 put_object: {ratio:.2f}")
    overall = statistics.geometric_mean([write_ratio, read_ratio, *s3.values()])
    print(
        f"FIGURE storage throughput vs raw (1.00 = parity): shard write {write_ratio:.2f}x, "
        f"shard read {read_ratio:.2f}x, S3 put "
        + ", ".join(f"{k} {v:.2f}x" for k, v in s3.items())
        + f"; geometric mean {overall:.2f}x"
    )


if __name__ == "__main__":
    main()
