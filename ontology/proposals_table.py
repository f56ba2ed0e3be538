"""The Parquet table proposers write: one row per proposed (media item, phrase) pair, and one per drop.

Schema `proposals` v1 (through `storage.tables`, atomic, versioned): `pair_id` (deterministic, null
for a dropped raw output that is not a valid phrase), `media_id`, `phrase`, `status` (`proposed` |
`dropped`), `reason` (for drops), `proposer`, `node_id`, `score`, `relation`, `image_uri`.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from ontology.proposers.base import ProposalBatch
from storage.records import PhraseError, pair_id
from storage.tables import TableSchema, read_table, write_table

PROPOSALS = TableSchema(
    "proposals",
    1,
    pa.schema([
        pa.field("pair_id", pa.string()),
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("phrase", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("proposer", pa.string(), nullable=False),
        pa.field("node_id", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("relation", pa.string()),
        pa.field("image_uri", pa.string()),
    ]),
)


def _pid(media_id: str, phrase: str) -> str | None:
    try:
        return pair_id(media_id, phrase)
    except PhraseError:
        return None


def proposal_rows(batches: Iterable[ProposalBatch], proposer: str,
                  image_uris: dict[str, str] | None = None) -> list[dict]:
    rows = []
    uris = image_uris or {}
    for batch in batches:
        uri = uris.get(batch.media_id)
        for p in batch.proposals:
            rows.append({"pair_id": pair_id(batch.media_id, p.phrase), "media_id": batch.media_id,
                         "phrase": p.phrase, "status": "proposed", "reason": None, "proposer": p.source,
                         "node_id": p.node_id, "score": p.score, "relation": p.relation, "image_uri": uri})
        for d in batch.dropped:
            rows.append({"pair_id": _pid(batch.media_id, d.raw) if d.raw else None, "media_id": batch.media_id,
                         "phrase": d.raw, "status": "dropped", "reason": d.reason, "proposer": proposer,
                         "node_id": None, "score": None, "relation": None, "image_uri": uri})
    return rows


def write_proposals(uri: str, batches: Iterable[ProposalBatch], proposer: str,
                    image_uris: dict[str, str] | None = None) -> str:
    return write_table(uri, proposal_rows(batches, proposer, image_uris), PROPOSALS)


def read_proposals(uri: str) -> pa.Table:
    return read_table(uri, PROPOSALS)
