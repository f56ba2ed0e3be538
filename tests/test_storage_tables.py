"""Parquet tables: versioned schemas, pair records round trip, atomic writes, version mismatch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.errors import SchemaVersionError, StorageError
from storage.masks import instance_to_mask, mask_to_instance
from storage.records import Lineage, Pair
from storage.tables import (
    PAIRS,
    QUARANTINE,
    TableSchema,
    read_pairs,
    read_table,
    write_pairs,
    write_table,
)


def _pairs() -> list[Pair]:
    m = np.zeros((7, 5), bool)
    m[2:5, 1:4] = True
    lin = Lineage(
        source="ai",
        model_version="v3",
        verifier_versions={"mv": "2", "ev": "1"},
        campaign="c1",
        phase=2,
    )
    return [
        Pair(
            media_id="a",
            phrase="red car",
            label="positive",
            lineage=lin,
            instances=[
                mask_to_instance(m, "ai", score=0.75),
                mask_to_instance(~m, "human", iscrowd=True),
            ],
        ),
        Pair(media_id="a", phrase="zebra", label="negative", is_instance_exhaustive=False),
        Pair(media_id="b", phrase="thing", label="dropped", reason="whole image"),
    ]


def test_pairs_round_trip(object_store):
    pairs = _pairs()
    uri = write_pairs("phase-1/ev/part-00000.parquet", pairs, object_store)
    assert uri == object_store.uri("phase-1/ev/part-00000.parquet")
    back = read_pairs("phase-1/ev/part-00000.parquet", object_store)
    assert back == pairs
    assert np.array_equal(
        instance_to_mask(back[0].instances[1]), instance_to_mask(pairs[0].instances[1])
    )
    table = read_table(
        "phase-1/ev/part-00000.parquet", PAIRS, object_store, columns=["pair_id", "label"]
    )
    assert table.column("pair_id").to_pylist() == [p.pair_id for p in pairs]
    assert object_store.list("phase-1/") == [uri]  # no temp files


def test_version_mismatch_is_a_clear_error(object_store):
    write_table(
        "q.parquet",
        [
            {
                "uri": "s3://x/y.tar",
                "member": "k.jpg",
                "key": "k",
                "stage": "read",
                "reason": "sha256",
            }
        ],
        QUARANTINE,
        object_store,
    )
    v2 = TableSchema("quarantine", 2, QUARANTINE.schema.append(pa.field("seen", pa.int64())))
    with pytest.raises(
        SchemaVersionError, match=r"q.parquet.*quarantine v1, expected quarantine v2"
    ):
        read_table("q.parquet", v2, object_store)
    with pytest.raises(SchemaVersionError, match="schema quarantine v1, expected pairs v1"):
        read_table("q.parquet", PAIRS, object_store)
    plain = pa.BufferOutputStream()
    pq.write_table(pa.table({"a": [1]}), plain)
    object_store.write_bytes("plain.parquet", plain.getvalue().to_pybytes())
    with pytest.raises(SchemaVersionError, match="plain.parquet.*no sam3 schema tag"):
        read_table("plain.parquet", PAIRS, object_store)
    object_store.write_bytes("junk.parquet", b"not parquet at all")
    with pytest.raises(StorageError, match="junk.parquet.*not a readable Parquet"):
        read_table("junk.parquet", PAIRS, object_store)


def test_rows_must_fit_the_schema(tmp_path):
    with pytest.raises(StorageError, match="quarantine v1"):
        write_table(str(tmp_path / "x.parquet"), [{"uri": 5, "reason": []}], QUARANTINE)
    with pytest.raises(StorageError, match="'reason'.*nulls"):
        write_table(str(tmp_path / "x.parquet"), [{"uri": "u", "reason": None}], QUARANTINE)
    assert not (tmp_path / "x.parquet").exists()
