"""Parquet tables with explicit, versioned schemas, written atomically through the object store.

A `TableSchema` is (name, version, pyarrow schema). Writing stores `sam3.table` and
`sam3.table_version` in the file's metadata; reading checks them (and the columns) against the
schema the reader expects and raises SchemaVersionError naming the URI, the found and the expected
(name, version) on any difference. `PAIRS` is the schema of pair records (one row per Pair, the
form stage outputs are kept in: `phase-<k>/<stage>/part-<unit>.parquet`); `QUARANTINE` holds bad
inputs and their reasons. Other modules declare their own TableSchema for their stage outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from storage.errors import SchemaVersionError, StorageError
from storage.objectstore import ObjectStore, default_store
from storage.records import Instance, Lineage, Pair

NAME_KEY, VERSION_KEY = b"sam3.table", b"sam3.table_version"


@dataclass(frozen=True)
class TableSchema:
    """A named, versioned Arrow schema. Bump `version` whenever the columns change."""

    name: str
    version: int
    schema: pa.Schema

    def tagged(self) -> pa.Schema:
        return self.schema.with_metadata(
            {NAME_KEY: self.name.encode(), VERSION_KEY: str(self.version).encode()}
        )

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


INSTANCE_STRUCT = pa.struct(
    [
        pa.field("rle_size", pa.list_(pa.int32()), nullable=False),
        pa.field("rle_counts", pa.string(), nullable=False),
        pa.field("bbox", pa.list_(pa.float64()), nullable=False),
        pa.field("iscrowd", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
    ]
)



def instance_to_row(i: Instance) -> dict:
    """An Instance as an INSTANCE_STRUCT row."""
    return {
        "rle_size": list(i.rle["size"]),
        "rle_counts": i.rle["counts"],
        "bbox": list(i.bbox),
        "iscrowd": i.iscrowd,
        "source": i.source,
        "score": i.score,
    }


def row_to_instance(r: dict) -> Instance:
    """An INSTANCE_STRUCT row back as an Instance."""
    return Instance(
        rle={"size": r["rle_size"], "counts": r["rle_counts"]},
        bbox=r["bbox"],
        iscrowd=r["iscrowd"],
        source=r["source"],
        score=r["score"],
    )


PAIRS = TableSchema(
    "pairs",
    1,
    pa.schema(
        [
            pa.field("pair_id", pa.string(), nullable=False),
            pa.field("media_id", pa.string(), nullable=False),
            pa.field("phrase", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("is_instance_exhaustive", pa.bool_(), nullable=False),
            pa.field("is_pixel_exhaustive", pa.bool_(), nullable=False),
            pa.field("instances", pa.list_(INSTANCE_STRUCT), nullable=False),
            pa.field("lineage_source", pa.string(), nullable=False),
            pa.field("lineage_model_version", pa.string()),
            pa.field("lineage_verifier_versions", pa.map_(pa.string(), pa.string())),
            pa.field("lineage_campaign", pa.string()),
            pa.field("lineage_phase", pa.int32()),
        ]
    ),
)

QUARANTINE = TableSchema(
    "quarantine",
    1,
    pa.schema(
        [
            pa.field("uri", pa.string(), nullable=False),
            pa.field("member", pa.string()),
            pa.field("key", pa.string()),
            pa.field("stage", pa.string()),
            pa.field("reason", pa.string(), nullable=False),
        ]
    ),
)


def to_table(
    rows: Sequence[dict] | pa.Table, schema: TableSchema, uri: str = "<table>"
) -> pa.Table:
    """An Arrow table with exactly `schema`'s columns (in order) and its name/version tagged."""
    try:
        if isinstance(rows, pa.Table):
            table = rows.select(schema.schema.names).cast(schema.schema)
        else:
            table = pa.Table.from_pylist(list(rows), schema=schema.schema)
    except (pa.ArrowException, KeyError, TypeError, ValueError) as err:
        raise StorageError(uri, f"rows do not fit schema {schema}: {err}") from None
    for f in schema.schema:
        if not f.nullable and table.column(f.name).null_count:
            raise StorageError(uri, f"column {f.name!r} of schema {schema} has nulls")
    return table.replace_schema_metadata(schema.tagged().metadata)


def write_table(
    uri: str,
    rows: Sequence[dict] | pa.Table,
    schema: TableSchema,
    store: ObjectStore | None = None,
    compression: str = "zstd",
) -> str:
    """Write rows as Parquet under `uri`, atomically; returns the URI."""
    store = store or default_store()
    table = to_table(rows, schema, store.uri(uri))
    with store.atomic_writer(uri) as f:
        pq.write_table(table, f, compression=compression)
    return f.uri


def read_table(
    uri: str,
    schema: TableSchema,
    store: ObjectStore | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Read a Parquet table written with `schema` (same name, version); else SchemaVersionError."""
    store = store or default_store()
    full = store.uri(uri)
    try:
        table = pq.read_table(pa.BufferReader(store.read_bytes(uri)), columns=columns)
    except pa.ArrowException as err:
        raise StorageError(full, f"not a readable Parquet file: {err}") from None
    meta = table.schema.metadata or {}
    found_name = meta.get(NAME_KEY, b"").decode() or None
    found_version = meta.get(VERSION_KEY, b"").decode() or None
    if found_name is None or found_version is None:
        raise SchemaVersionError(full, f"has no sam3 schema tag; expected {schema}")
    if (found_name, found_version) != (schema.name, str(schema.version)):
        raise SchemaVersionError(
            full, f"was written with schema {found_name} v{found_version}, expected {schema}"
        )
    want = (
        schema.schema if columns is None else pa.schema([schema.schema.field(c) for c in columns])
    )
    if not table.schema.remove_metadata().equals(want):
        raise SchemaVersionError(
            full, f"columns differ from {schema}: found {table.schema.remove_metadata()}"
        )
    return table


def pair_rows(pairs: Iterable[Pair]) -> list[dict]:
    """PAIRS rows for pair records."""
    rows = []
    for p in pairs:
        lin = p.lineage
        rows.append(
            {
                "pair_id": p.pair_id,
                "media_id": p.media_id,
                "phrase": p.phrase,
                "label": p.label,
                "reason": p.reason,
                "is_instance_exhaustive": p.is_instance_exhaustive,
                "is_pixel_exhaustive": p.is_pixel_exhaustive,
                "instances": [instance_to_row(i) for i in p.instances],
                "lineage_source": lin.source,
                "lineage_model_version": lin.model_version,
                "lineage_verifier_versions": list(lin.verifier_versions.items()),
                "lineage_campaign": lin.campaign,
                "lineage_phase": lin.phase,
            }
        )
    return rows


def rows_to_pairs(table: pa.Table) -> list[Pair]:
    """Pair records from a PAIRS table."""
    out = []
    for r in table.to_pylist():
        insts = [row_to_instance(i) for i in r["instances"]]
        lineage = Lineage(
            source=r["lineage_source"],
            model_version=r["lineage_model_version"],
            verifier_versions=dict(r["lineage_verifier_versions"] or []),
            campaign=r["lineage_campaign"],
            phase=r["lineage_phase"],
        )
        out.append(
            Pair(
                media_id=r["media_id"],
                phrase=r["phrase"],
                label=r["label"],
                reason=r["reason"],
                is_instance_exhaustive=r["is_instance_exhaustive"],
                is_pixel_exhaustive=r["is_pixel_exhaustive"],
                instances=insts,
                lineage=lineage,
            )
        )
    return out


def write_pairs(uri: str, pairs: Iterable[Pair], store: ObjectStore | None = None) -> str:
    return write_table(uri, pair_rows(pairs), PAIRS, store)


def read_pairs(uri: str, store: ObjectStore | None = None) -> list[Pair]:
    return rows_to_pairs(read_table(uri, PAIRS, store))
