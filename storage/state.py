"""The SQL state store: campaigns, phases, work units, the human task queue and the model registry.

`StateStore(url)` takes a SQLAlchemy URL (`sqlite:///path.db` by default, `postgresql+psycopg2://...`
in production) or a plain file path (SQLite). Methods are small transactions and return detached
ORM rows (attributes loaded, safe to read after the call). Enqueueing human tasks is idempotent
(a dedup key per task); `claim_next_task` never hands one task to two connections: on PostgreSQL it
uses SELECT ... FOR UPDATE SKIP LOCKED, on SQLite one conditional UPDATE ... RETURNING (SQLite
serialises writers, so the `status = 'queued'` check and the claim are one atomic step).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.state_models import (
    UNIT_STATUSES,
    Base,
    Campaign,
    HumanTask,
    ModelVersion,
    Phase,
    WorkUnit,
    utcnow,
)


class StateError(LookupError):
    """A state-store request that cannot be met (unknown campaign, task not claimed, ...)."""


def _engine(url: str) -> Engine:
    if "://" not in url:
        url = "sqlite:///" + os.path.abspath(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)) or ".", exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return eng
    return create_engine(url, pool_pre_ping=True)


class StateStore:
    """Transactional engine state on SQLite or PostgreSQL."""

    def __init__(self, url: str = "sqlite:///state.db", create: bool = True):
        self.engine = _engine(url)
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            self.create_all()

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    def _insert_ignore(self, s: Session, model, values: dict, keys: list[str]) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING; True when a row was inserted."""
        ins = pg_insert if self.dialect == "postgresql" else sqlite_insert
        res = s.execute(ins(model).values(**values).on_conflict_do_nothing(index_elements=keys))
        return res.rowcount == 1

    # ---- campaigns and phases -------------------------------------------------------------------
    def upsert_campaign(
        self, name: str, config: dict | None = None, status: str | None = None
    ) -> Campaign:
        with self.session() as s:
            self._insert_ignore(
                s,
                Campaign,
                {
                    "name": name,
                    "config": config or {},
                    "status": status or "created",
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                },
                ["name"],
            )
            c = s.scalars(select(Campaign).where(Campaign.name == name)).one()
            if config is not None:
                c.config = config
            if status is not None:
                c.status = status
            return c

    def get_campaign(self, name: str) -> Campaign:
        with self.session() as s:
            return self._campaign(s, name)

    def list_campaigns(self) -> list[Campaign]:
        with self.session() as s:
            return list(s.scalars(select(Campaign).order_by(Campaign.id)))

    @staticmethod
    def _campaign(s: Session, name: str) -> Campaign:
        c = s.scalars(select(Campaign).where(Campaign.name == name)).first()
        if c is None:
            raise StateError(f"campaign {name!r} does not exist")
        return c

    def _phase(self, s: Session, campaign: str, index: int) -> Phase:
        c = self._campaign(s, campaign)
        p = s.scalars(select(Phase).where(Phase.campaign_id == c.id, Phase.index == index)).first()
        if p is None:
            raise StateError(f"campaign {campaign!r} has no phase {index}")
        return p

    def upsert_phase(
        self, campaign: str, index: int, name: str | None = None, status: str | None = None
    ) -> Phase:
        with self.session() as s:
            c = self._campaign(s, campaign)
            self._insert_ignore(
                s,
                Phase,
                {
                    "campaign_id": c.id,
                    "index": index,
                    "name": name or "",
                    "status": status or "pending",
                },
                ["campaign_id", "index"],
            )
            p = self._phase(s, campaign, index)
            if name is not None:
                p.name = name
            if status is not None:
                p.status = status
                if status == "running" and p.started_at is None:
                    p.started_at = utcnow()
                if status in ("done", "failed"):
                    p.finished_at = utcnow()
            return p

    def list_phases(self, campaign: str) -> list[Phase]:
        with self.session() as s:
            c = self._campaign(s, campaign)
            return list(
                s.scalars(select(Phase).where(Phase.campaign_id == c.id).order_by(Phase.index))
            )

    # ---- work units -----------------------------------------------------------------------------
    def upsert_work_unit(
        self, campaign: str, phase: int, stage: str, unit_key: str, status: str | None = None
    ) -> WorkUnit:
        if status is not None and status not in UNIT_STATUSES:
            raise StateError(f"work unit status {status!r} is not one of {UNIT_STATUSES}")
        with self.session() as s:
            p = self._phase(s, campaign, phase)
            self._insert_ignore(
                s,
                WorkUnit,
                {
                    "phase_id": p.id,
                    "stage": stage,
                    "unit_key": unit_key,
                    "status": "pending",
                    "attempts": 0,
                    "updated_at": utcnow(),
                },
                ["phase_id", "stage", "unit_key"],
            )
            u = self._unit(s, p, stage, unit_key)
            if status is not None:
                u.status = status
                if status == "running":
                    u.attempts += 1
            return u

    @staticmethod
    def _unit(s: Session, p: Phase, stage: str, unit_key: str) -> WorkUnit:
        u = s.scalars(
            select(WorkUnit).where(
                WorkUnit.phase_id == p.id, WorkUnit.stage == stage, WorkUnit.unit_key == unit_key
            )
        ).first()
        if u is None:
            raise StateError(f"no work unit {unit_key!r} for stage {stage!r} in phase {p.index}")
        return u

    def mark_unit_done(
        self, campaign: str, phase: int, stage: str, unit_key: str, marker_uri: str
    ) -> WorkUnit:
        """Record the unit as done, pointing at its committed output marker."""
        with self.session() as s:
            u = self._unit(s, self._phase(s, campaign, phase), stage, unit_key)
            u.status, u.marker_uri, u.error = "done", marker_uri, None
            return u

    def mark_unit_failed(
        self, campaign: str, phase: int, stage: str, unit_key: str, error: str
    ) -> WorkUnit:
        with self.session() as s:
            u = self._unit(s, self._phase(s, campaign, phase), stage, unit_key)
            u.status, u.error = "failed", error
            return u

    def list_units(
        self, campaign: str, phase: int, stage: str | None = None, status: str | None = None
    ) -> list[WorkUnit]:
        with self.session() as s:
            p = self._phase(s, campaign, phase)
            q = select(WorkUnit).where(WorkUnit.phase_id == p.id)
            if stage is not None:
                q = q.where(WorkUnit.stage == stage)
            if status is not None:
                q = q.where(WorkUnit.status == status)
            return list(s.scalars(q.order_by(WorkUnit.stage, WorkUnit.unit_key)))

    # ---- human tasks ----------------------------------------------------------------------------
    def enqueue_tasks(self, campaign: str, phase: int, tasks: Iterable[dict]) -> int:
        """Queue tasks {task_type, payload_ref, dedup_key?, priority?}; returns how many were new.

        The dedup key defaults to "<task_type>:<payload_ref>": enqueueing the same task again is a
        no-op, so a rerun of a stage never duplicates human work.
        """
        with self.session() as s:
            p = self._phase(s, campaign, phase)
            new = 0
            for t in tasks:
                key = t.get("dedup_key") or f"{t['task_type']}:{t['payload_ref']}"
                new += self._insert_ignore(
                    s,
                    HumanTask,
                    {
                        "phase_id": p.id,
                        "dedup_key": key,
                        "task_type": t["task_type"],
                        "payload_ref": t["payload_ref"],
                        "priority": int(t.get("priority", 0)),
                        "status": "queued",
                        "created_at": utcnow(),
                    },
                    ["dedup_key"],
                )
            return new

    def enqueue_task(
        self,
        campaign: str,
        phase: int,
        task_type: str,
        payload_ref: str,
        dedup_key: str | None = None,
        priority: int = 0,
    ) -> HumanTask:
        key = dedup_key or f"{task_type}:{payload_ref}"
        self.enqueue_tasks(
            campaign,
            phase,
            [
                {
                    "task_type": task_type,
                    "payload_ref": payload_ref,
                    "dedup_key": key,
                    "priority": priority,
                }
            ],
        )
        with self.session() as s:
            return s.scalars(select(HumanTask).where(HumanTask.dedup_key == key)).one()

    def claim_next_task(
        self, assignee: str, task_type: str | None = None, campaign: str | None = None
    ) -> HumanTask | None:
        """Atomically claim the top-priority queued task (oldest first); None if none is left."""
        with self.session() as s:
            q = select(HumanTask.id).where(HumanTask.status == "queued")
            if task_type is not None:
                q = q.where(HumanTask.task_type == task_type)
            if campaign is not None:
                c = self._campaign(s, campaign)
                q = q.where(
                    HumanTask.phase_id.in_(select(Phase.id).where(Phase.campaign_id == c.id))
                )
            q = q.order_by(HumanTask.priority.desc(), HumanTask.id).limit(1)
            values = {"status": "claimed", "assignee": assignee, "claimed_at": utcnow()}
            if self.dialect == "postgresql":
                task_id = s.scalar(q.with_for_update(skip_locked=True))
                if task_id is None:
                    return None
                s.execute(update(HumanTask).where(HumanTask.id == task_id).values(**values))
            else:
                stmt = (
                    update(HumanTask)
                    .where(HumanTask.id == q.scalar_subquery(), HumanTask.status == "queued")
                    .values(**values)
                    .returning(HumanTask.id)
                )
                task_id = s.scalar(stmt)
                if task_id is None:
                    return None
            return s.get(HumanTask, task_id, populate_existing=True)

    def complete_task(
        self, task_id: int, result: dict, seconds_spent: float, assignee: str | None = None
    ) -> HumanTask:
        """Store a claimed task's result; refuses tasks not claimed (by `assignee`, if given)."""
        with self.session() as s:
            t = s.get(HumanTask, task_id, with_for_update=self.dialect == "postgresql")
            if t is None:
                raise StateError(f"human task {task_id} does not exist")
            if t.status != "claimed" or (assignee is not None and t.assignee != assignee):
                raise StateError(
                    f"human task {task_id} is {t.status} by {t.assignee!r}; "
                    f"cannot complete it as {assignee!r}"
                )
            t.status, t.result, t.seconds_spent, t.completed_at = (
                "done",
                result,
                float(seconds_spent),
                utcnow(),
            )
            return t

    def release_task(self, task_id: int) -> HumanTask:
        """Put a claimed task back in the queue (annotator gave up or timed out)."""
        with self.session() as s:
            t = s.get(HumanTask, task_id)
            if t is None or t.status != "claimed":
                raise StateError(f"human task {task_id} is not claimed")
            t.status, t.assignee, t.claimed_at = "queued", None, None
            return t

    def get_task(self, task_id: int) -> HumanTask:
        with self.session() as s:
            t = s.get(HumanTask, task_id)
            if t is None:
                raise StateError(f"human task {task_id} does not exist")
            return t

    def task_counts(self, campaign: str | None = None) -> dict[str, int]:
        """Number of tasks per status (optionally for one campaign)."""
        with self.session() as s:
            q = select(HumanTask.status, func.count()).group_by(HumanTask.status)
            if campaign is not None:
                c = self._campaign(s, campaign)
                q = q.where(
                    HumanTask.phase_id.in_(select(Phase.id).where(Phase.campaign_id == c.id))
                )
            return {status: n for status, n in s.execute(q)}

    # ---- model registry -------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        version: str,
        uri: str,
        metrics: dict | None = None,
        parent: str | None = None,
    ) -> ModelVersion:
        with self.session() as s:
            if s.scalars(
                select(ModelVersion).where(
                    ModelVersion.name == name, ModelVersion.version == version
                )
            ).first():
                raise StateError(f"model {name}:{version} is already registered")
            m = ModelVersion(
                name=name,
                version=version,
                uri=uri,
                metrics=metrics or {},
                parent=parent,
                promoted=False,
                created_at=utcnow(),
            )
            s.add(m)
            return m

    def list_models(self, name: str | None = None) -> list[ModelVersion]:
        with self.session() as s:
            q = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
            if name is not None:
                q = q.where(ModelVersion.name == name)
            return list(s.scalars(q))

    def promote_model(self, name: str, version: str) -> ModelVersion:
        """Make `version` the promoted one for `name` (and no other), in one transaction."""
        with self.session() as s:
            m = s.scalars(
                select(ModelVersion)
                .where(ModelVersion.name == name, ModelVersion.version == version)
                .with_for_update()
            ).first()
            if m is None:
                raise StateError(f"model {name}:{version} is not registered")
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.name == name, ModelVersion.id != m.id)
                .values(promoted=False)
            )
            m.promoted = True
            return m

    def promoted_model(self, name: str) -> ModelVersion | None:
        with self.session() as s:
            return s.scalars(
                select(ModelVersion).where(
                    ModelVersion.name == name, ModelVersion.promoted.is_(True)
                )
            ).first()
