"""Human decision logs: the table verifiers are trained, calibrated and evaluated from.

One row per rater judgement of one human task (`DECISIONS`, a versioned `storage.tables.TableSchema`):
the task (id, kind mv / ev / correction, media id and optional media URI, phrase, the masks shown),
the rater, the label (MV / EV label, or positive / negative / dropped for a correction), the reason,
the corrected instances (corrections only), seconds, AI assistance, campaign and phase.

`decisions_from_results(tasks, results)` turns the human backends' task and result objects (anything
with their attributes; `engine.humans.HumanTask` / `HumanResult`) into `Decision`s;
`write_decisions` / `read_decisions` store them as Parquet through the object store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from storage.objectstore import ObjectStore
from storage.records import Instance
from storage.tables import INSTANCE_STRUCT, TableSchema, instance_to_row, read_table, row_to_instance, write_table

KINDS = ("mv", "ev", "correction")

DECISIONS = TableSchema(
    "verifier_decisions",
    1,
    pa.schema(
        [
            pa.field("task_id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("media_id", pa.string(), nullable=False),
            pa.field("media_uri", pa.string()),
            pa.field("phrase", pa.string(), nullable=False),
            pa.field("masks", pa.list_(INSTANCE_STRUCT), nullable=False),
            pa.field("rater", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("instances", pa.list_(INSTANCE_STRUCT), nullable=False),
            pa.field("seconds", pa.float64()),
            pa.field("ai_assisted", pa.bool_(), nullable=False),
            pa.field("campaign", pa.string()),
            pa.field("phase", pa.int32()),
        ]
    ),
)


@dataclass
class Decision:
    """One rater's judgement of one human task."""

    task_id: str
    kind: str
    media_id: str
    phrase: str
    rater: str
    label: str
    masks: list[Instance] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)  # correction: the corrected masks
    reason: str | None = None
    seconds: float | None = None
    ai_assisted: bool = False
    media_uri: str | None = None
    campaign: str | None = None
    phase: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"decision {self.task_id!r}: kind {self.kind!r} is not one of {KINDS}")


def decision_rows(decisions: Iterable[Decision]) -> list[dict]:
    return [
        {
            "task_id": d.task_id,
            "kind": d.kind,
            "media_id": d.media_id,
            "media_uri": d.media_uri,
            "phrase": d.phrase,
            "masks": [instance_to_row(i) for i in d.masks],
            "rater": d.rater,
            "label": d.label,
            "reason": d.reason,
            "instances": [instance_to_row(i) for i in d.instances],
            "seconds": d.seconds,
            "ai_assisted": bool(d.ai_assisted),
            "campaign": d.campaign,
            "phase": d.phase,
        }
        for d in decisions
    ]


def rows_to_decisions(table: pa.Table) -> list[Decision]:
    out = []
    for r in table.to_pylist():
        out.append(
            Decision(
                task_id=r["task_id"],
                kind=r["kind"],
                media_id=r["media_id"],
                phrase=r["phrase"],
                rater=r["rater"],
                label=r["label"],
                masks=[row_to_instance(i) for i in r["masks"]],
                instances=[row_to_instance(i) for i in r["instances"]],
                reason=r["reason"],
                seconds=r["seconds"],
                ai_assisted=r["ai_assisted"],
                media_uri=r["media_uri"],
                campaign=r["campaign"],
                phase=r["phase"],
            )
        )
    return out


def write_decisions(
    uri: str, decisions: Iterable[Decision], store: ObjectStore | None = None
) -> str:
    """Write a decision log as Parquet (atomically); returns the URI."""
    return write_table(uri, decision_rows(decisions), DECISIONS, store)


def read_decisions(uris: str | Sequence[str], store: ObjectStore | None = None) -> list[Decision]:
    """Read one or more decision logs (SchemaVersionError for a file of another schema)."""
    uris = [uris] if isinstance(uris, str) else list(uris)
    return [d for u in uris for d in rows_to_decisions(read_table(u, DECISIONS, store))]


def decisions_from_results(
    tasks: Iterable,
    results: Iterable,
    *,
    media_uris: Mapping[str, str] | None = None,
    campaign: str | None = None,
    phase: int | None = None,
) -> list[Decision]:
    """Decisions from human tasks and their results (`HumanTask` / `HumanResult`-like objects).

    A result whose task is unknown is a ValueError naming its task id.
    """
    by_id = {t.task_id: t for t in tasks}
    media_uris = media_uris or {}
    out = []
    for r in results:
        t = by_id.get(r.task_id)
        if t is None:
            raise ValueError(f"result for unknown task {r.task_id!r}")
        out.append(
            Decision(
                task_id=t.task_id,
                kind=t.kind,
                media_id=t.media_id,
                phrase=t.phrase,
                rater=r.rater,
                label=r.label,
                masks=list(t.masks),
                instances=list(getattr(r, "instances", []) or []),
                reason=getattr(r, "reason", None),
                seconds=getattr(r, "seconds", None),
                ai_assisted=bool(getattr(t, "ai_assisted", False)),
                media_uri=media_uris.get(t.media_id),
                campaign=campaign,
                phase=phase,
            )
        )
    return out
