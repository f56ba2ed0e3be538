"""The human task queue half of the state store: enqueue (idempotent), claim, complete, release.

A mixin of `storage.state.StateStore` (it uses the store's `session()`, `dialect`, `_phase()`,
`_campaign()` and `_insert_ignore()`). `claim_next_task` never hands one task to two connections:
PostgreSQL takes the row with SELECT ... FOR UPDATE SKIP LOCKED; SQLite claims it in one
conditional UPDATE ... RETURNING, which SQLite runs under its single writer lock, so the
`status = 'queued'` test and the claim are one atomic step.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update

from storage.state_models import HumanTask, Phase, StateError, utcnow


class HumanTaskQueue:
    """Methods on the human_tasks table (mixed into StateStore)."""

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
