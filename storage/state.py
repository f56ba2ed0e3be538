"""The SQL state store: campaigns, phases, work units, the human task queue and the model registry.

`StateStore(url)` takes a SQLAlchemy URL (`sqlite:///path.db` by default, `postgresql+psycopg2://...`
in production) or a plain file path (SQLite). Methods are small transactions and return detached
ORM rows (attributes loaded, safe to read after the call). The human task queue methods
(idempotent enqueue, claim_next_task that never hands one task to two connections, complete) come
from `storage.state_tasks.HumanTaskQueue`; the model registry index methods are here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.state_models import (
    UNIT_STATUSES,
    Base,
    Campaign,
    ModelVersion,
    Phase,
    StateError,
    WorkUnit,
    utcnow,
)
from storage.state_tasks import HumanTaskQueue


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


class StateStore(HumanTaskQueue):
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
