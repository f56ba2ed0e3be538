"""Where a campaign's data lives (DESIGN.md "Data at rest") and how stage outputs are committed.

    <root>/media/<domain>/<media id>.png             media the engine materialised (shapes world, shards)
    <root>/campaigns/<name>/campaign.yaml            the frozen config
    <root>/campaigns/<name>/gold/<domain>/           shapes world: gold SA-Co JSON + images
    <root>/campaigns/<name>/phase-<k>/<stage>/part-<unit>.parquet   stage outputs per work unit
    <root>/campaigns/<name>/phase-<k>/<stage>/_done/<unit>.json     the unit's completion marker
    <root>/campaigns/<name>/phase-<k>/<step>/_SUCCESS.json          a phase-level step's marker
    <root>/campaigns/<name>/phase-<k>/shards/train-%06d.tar         WebDataset shards
    <root>/campaigns/<name>/phase-<k>/export/saco.json              SA-Co export
    <root>/campaigns/<name>/reports/                                 report.json, index.html, PNGs

Stage parts are `RECORDS` tables (pair id, media id, phrase, a JSON payload) or `storage.tables.PAIRS`
(final labels) written atomically; a unit is done only once its marker exists, written after the part
(and after any side effect such as enqueueing human tasks, which is idempotent), so a rerun redoes
exactly the units without a marker.
"""

from __future__ import annotations

import json
from functools import cached_property

import pyarrow as pa

from engine.campaign.config import CampaignConfig
from storage.objectstore import ObjectStore
from storage.tables import TableSchema, read_table, write_table
from storage.uri import join

RECORDS = TableSchema(
    "campaign_records",
    1,
    pa.schema([
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("phrase", pa.string(), nullable=False),
        pa.field("data", pa.string(), nullable=False),
    ]),
)


class Layout:
    """Paths and committed reads/writes of one campaign under its storage root."""

    def __init__(self, cfg: CampaignConfig, store: ObjectStore | None = None):
        self.cfg = cfg
        self.store = store or ObjectStore(fsync=False)
        self.root = cfg.root.rstrip("/")
        self.campaign = join(self.root, "campaigns", cfg.name)

    # ---- paths ---------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return join(self.campaign, *parts)

    def phase_dir(self, phase: int) -> str:
        return self.path(f"phase-{phase}")

    def part(self, phase: int, stage: str, unit: str) -> str:
        return join(self.phase_dir(phase), stage, f"part-{unit}.parquet")

    def unit_marker(self, phase: int, stage: str, unit: str) -> str:
        return join(self.phase_dir(phase), stage, "_done", f"{unit}.json")

    def step_marker(self, phase: int, step: str) -> str:
        return join(self.phase_dir(phase), step, "_SUCCESS.json")

    def media(self, domain: str, media_id: str, ext: str = "png") -> str:
        safe = media_id.replace("/", "_").replace(":", "_")
        return join(self.root, "media", domain, f"{safe}.{ext}")

    def shards_prefix(self, phase: int) -> str:
        return join(self.phase_dir(phase), "shards")

    def export(self, phase: int) -> str:
        return join(self.phase_dir(phase), "export", "saco.json")

    def gold(self, domain: str) -> str:
        return self.path("gold", domain, "saco_gold.json")

    @cached_property
    def reports(self) -> str:
        return self.path("reports")

    # ---- markers -------------------------------------------------------------------------------
    def done(self, uri: str) -> dict | None:
        if not self.store.exists(uri):
            return None
        return json.loads(self.store.read_bytes(uri))

    def mark(self, uri: str, info: dict) -> dict:
        self.store.write_bytes(uri, json.dumps(info, sort_keys=True, default=str).encode())
        return info

    def unit_done(self, phase: int, stage: str, unit: str) -> dict | None:
        return self.done(self.unit_marker(phase, stage, unit))

    def clear_unit(self, phase: int, stage: str, unit: str) -> None:
        self.store.delete(self.unit_marker(phase, stage, unit))

    # ---- records -------------------------------------------------------------------------------
    def write_records(self, uri: str, rows: list[dict]) -> str:
        """rows: {pair_id, media_id, phrase, **payload}; the payload is stored as JSON."""
        out = []
        for r in rows:
            payload = {k: v for k, v in r.items() if k not in ("pair_id", "media_id", "phrase")}
            out.append({"pair_id": r["pair_id"], "media_id": r["media_id"], "phrase": r["phrase"],
                        "data": json.dumps(payload, sort_keys=True, default=_jsonable)})
        return write_table(uri, out, RECORDS, self.store)

    def read_records(self, uri: str) -> list[dict]:
        table = read_table(uri, RECORDS, self.store)
        return [{"pair_id": r["pair_id"], "media_id": r["media_id"], "phrase": r["phrase"],
                 **json.loads(r["data"])} for r in table.to_pylist()]

    def read_stage(self, phase: int, stage: str, unit: str) -> list[dict]:
        return self.read_records(self.part(phase, stage, unit))


def _jsonable(v):
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store {type(v).__name__} in a stage record")
