"""The human desk: human tasks through the state store's queue to a `HumanBackend` and back.

- `enqueue` puts tasks in the state store's queue (idempotent: the dedup key is the task's logical id
  `<campaign>:p<phase>:<pair id>:<kind>[:<mask>]`, so a rerun never duplicates human work).
- `dispatch` claims queued tasks and submits them to the backend under the id `<logical id>~<attempt>`
  (a backend refuses an id twice; a re-queued task goes out again as the next attempt). With a human
  budget (seconds) spent, the queued rest is cancelled.
- `collect` applies each result **once**: one conditional UPDATE moves the task to `done` only if it is
  not done yet, so a result that arrives twice (or a late answer to an attempt that was re-queued) is
  counted as a duplicate and ignored.
- `requeue_overdue` puts tasks claimed longer than the deadline back in the queue. A backend that
  keeps no state across processes (`durable = False`, e.g. the simulated annotators) cannot answer
  tasks claimed by a process that died, so those are re-queued when a new desk starts.

`SimulatedBackend` is `engine.humans.simulated.SimulatedAnnotators` with judgements seeded by the
logical id (not the attempt), so a resumed campaign gets the same answers as an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from engine.humans.base import HumanBackend, HumanResult, HumanTask
from engine.humans.simulated import AnnotatorProfile, SimulatedAnnotators
from storage.state import StateStore
from storage.state_models import HumanTask as TaskRow
from storage.state_models import Phase


def logical_id(backend_id: str) -> str:
    return backend_id.rsplit("~", 1)[0]


class SimulatedBackend(SimulatedAnnotators):
    """Simulated annotators whose answers depend on the logical task id, not the attempt."""

    durable = False

    def rng(self, task_id: str, rater: int):
        return super().rng(logical_id(task_id), rater)


def make_backend(settings, campaign: str = "campaign") -> HumanBackend | None:
    """The configured backend: simulated annotators, Label Studio projects of the campaign, or none."""
    if settings.backend == "none":
        return None
    if settings.backend == "label_studio":
        from engine.humans.label_studio import LabelStudioBackend
        from engine.humans.ls_client import LabelStudioSettings

        backend = LabelStudioBackend(LabelStudioSettings(campaign=campaign, **settings.label_studio))
        backend.durable = True  # its projects outlive this process: claims wait for their deadline
        return backend
    profile = AnnotatorProfile(mv_error_rate=settings.mv_error_rate, ev_error_rate=settings.ev_error_rate)
    return SimulatedBackend(profile=profile, seed=settings.seed)


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class HumanDesk:
    """Human tasks of one campaign: queue (state store) <-> backend (see module docstring)."""

    def __init__(self, state: StateStore, campaign: str, backend: HumanBackend | None,
                 deadline_s: float = 3600.0, budget_s: float | None = None):
        self.state, self.campaign, self.backend = state, campaign, backend
        self.deadline_s, self.budget_s = deadline_s, budget_s
        self.attempts: dict[str, int] = {}
        self.duplicates = 0
        self.stats = {"dispatched": 0, "applied": 0, "duplicates": 0, "requeued": 0, "cancelled": 0}
        if backend is not None and not getattr(backend, "durable", False):
            self.stats["requeued"] += self._release(lambda row: True)

    # ---- ids -----------------------------------------------------------------------------------
    def task_id(self, phase: int, pair_id: str, kind: str, mask_index: int | None = None) -> str:
        tail = f":{mask_index}" if kind == "mv" else ""
        return f"{self.campaign}:p{phase}:{pair_id}:{kind}{tail}"

    # ---- queue ---------------------------------------------------------------------------------
    def enqueue(self, phase: int, tasks: list[tuple[HumanTask, str, str]]) -> int:
        """Queue (task, pair id, result key) triples; returns how many were new."""
        rows = [{"task_type": t.kind, "dedup_key": t.task_id, "priority": 0,
                 "payload_ref": json.dumps({"task": t.model_dump(mode="json"), "pair_id": pid, "key": key})}
                for t, pid, key in tasks]
        return self.state.enqueue_tasks(self.campaign, phase, rows) if rows else 0

    def _campaign_tasks(self):
        c = self.state.get_campaign(self.campaign)
        return select(Phase.id).where(Phase.campaign_id == c.id)

    def spent_seconds(self) -> float:
        with self.state.session() as s:
            q = select(func.coalesce(func.sum(TaskRow.seconds_spent), 0.0)).where(
                TaskRow.phase_id.in_(self._campaign_tasks()), TaskRow.status == "done")
            return float(s.scalar(q) or 0.0)

    def dispatch(self) -> int:
        """Claim queued tasks and send them to the backend; returns how many went out."""
        if self.backend is None:
            return 0
        if self.budget_s is not None and self.spent_seconds() >= self.budget_s:
            self.stats["cancelled"] += self._cancel_queued()
            return 0
        out = []
        while True:
            row = self.state.claim_next_task(self.backend.name, campaign=self.campaign)
            if row is None:
                break
            payload = json.loads(row.payload_ref)
            n = self.attempts.get(row.dedup_key, 0) + 1
            self.attempts[row.dedup_key] = n
            out.append(HumanTask.model_validate({**payload["task"], "task_id": f"{row.dedup_key}~{n}"}))
        if out:
            self.backend.submit(out)
        self.stats["dispatched"] += len(out)
        return len(out)

    def collect(self) -> int:
        """Apply the backend's finished results, each task once; returns how many were applied."""
        if self.backend is None:
            return 0
        by_task: dict[str, dict[str, HumanResult]] = defaultdict(dict)
        for r in self.backend.collect():  # one result per rater: a repeated delivery is a duplicate
            raters = by_task[logical_id(r.task_id)]
            if r.rater in raters:
                self.stats["duplicates"] += 1
            else:
                raters[r.rater] = r
        applied = 0
        for key, results in by_task.items():
            applied += self.apply(key, list(results.values()))
        return applied

    def apply(self, key: str, results: list[HumanResult]) -> bool:
        """Store one task's results unless it is already done (then it counts as a duplicate)."""
        value = {"results": [r.model_dump(mode="json") for r in results]}
        seconds = float(sum(r.seconds for r in results))
        with self.state.session() as s:
            res = s.execute(update(TaskRow).where(TaskRow.dedup_key == key,
                                                  TaskRow.status.in_(("queued", "claimed")))
                            .values(status="done", result=value, seconds_spent=seconds,
                                    completed_at=datetime.now(UTC)))
            ok = res.rowcount == 1
        if ok:
            self.stats["applied"] += 1
        else:
            self.stats["duplicates"] += 1
        return ok

    def requeue_overdue(self, now: float | None = None) -> int:
        limit = (now or time.time()) - self.deadline_s
        n = self._release(lambda row: _aware(row.claimed_at).timestamp() < limit)
        self.stats["requeued"] += n
        return n

    def _release(self, which) -> int:
        with self.state.session() as s:
            rows = list(s.scalars(select(TaskRow).where(TaskRow.phase_id.in_(self._campaign_tasks()),
                                                        TaskRow.status == "claimed")))
            n = 0
            for row in rows:
                if which(row):
                    row.status, row.assignee, row.claimed_at = "queued", None, None
                    n += 1
            return n

    def _cancel_queued(self) -> int:
        with self.state.session() as s:
            res = s.execute(update(TaskRow).where(TaskRow.phase_id.in_(self._campaign_tasks()),
                                                  TaskRow.status == "queued").values(status="cancelled"))
            return res.rowcount

    def pump(self) -> dict:
        """One round: re-queue overdue tasks, dispatch, collect. Returns the queue counts."""
        self.requeue_overdue()
        self.dispatch()
        self.collect()
        return self.counts()

    # ---- reads ---------------------------------------------------------------------------------
    def counts(self, phase: int | None = None) -> dict[str, int]:
        with self.state.session() as s:
            q = select(TaskRow.status, func.count()).group_by(TaskRow.status)
            if phase is None:
                q = q.where(TaskRow.phase_id.in_(self._campaign_tasks()))
            else:
                q = q.where(TaskRow.phase_id == self.state._phase(s, self.campaign, phase).id)
            return {st: n for st, n in s.execute(q)}

    def rows(self, phase: int, status: str | None = None) -> list[TaskRow]:
        with self.state.session() as s:
            q = select(TaskRow).where(TaskRow.phase_id == self.state._phase(s, self.campaign, phase).id)
            if status is not None:
                q = q.where(TaskRow.status == status)
            return list(s.scalars(q.order_by(TaskRow.dedup_key)))

    def results(self, phase: int) -> dict[str, dict[str, list[dict] | str]]:
        """pair id -> result key -> rater results (or "cancelled"), for finished tasks of a phase."""
        out: dict[str, dict] = defaultdict(dict)
        for row in self.rows(phase):
            if row.status not in ("done", "cancelled"):
                continue
            payload = json.loads(row.payload_ref)
            out[payload["pair_id"]][payload["key"]] = (
                "cancelled" if row.status == "cancelled" else row.result["results"])
        return out

    def decisions(self, phases: list[int]):
        """`verifiers.decisions.Decision`s of every finished human task of these phases."""
        from verifiers.decisions import decisions_from_results

        out = []
        for phase in phases:
            tasks, results = [], []
            for row in self.rows(phase, "done"):
                task = HumanTask.model_validate(json.loads(row.payload_ref)["task"])
                tasks.append(task)
                results.extend(HumanResult.model_validate({**r, "task_id": task.task_id})
                               for r in row.result["results"])
            out.extend(decisions_from_results(tasks, results, campaign=self.campaign, phase=phase))
        return out
