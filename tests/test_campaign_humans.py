"""The human desk: a task unanswered past its deadline is re-queued (not lost), a result delivered
twice is applied once, enqueueing is idempotent, a dead process's claims come back, budgets cancel."""

import time

import pytest

from engine.campaign.humans import HumanDesk, SimulatedBackend, logical_id
from engine.humans.base import HumanTask
from engine.world import media_key
from storage.state import StateStore


class SlowCrowd:
    """A HumanBackend that ignores a task's first attempt and delivers every later result twice."""

    name = "slow-crowd"
    durable = True

    def __init__(self):
        self.inner = SimulatedBackend(seed=3)
        self.submitted: list[str] = []
        self.outbox: list = []

    def submit(self, tasks):
        self.submitted.extend(t.task_id for t in tasks)
        answered = [t for t in tasks if not t.task_id.endswith("~1")]
        self.inner.submit(answered)
        return [t.task_id for t in tasks]

    def collect(self, task_ids=None):
        results = self.inner.collect()
        return results + [r.model_copy() for r in results]  # each delivered twice

    def pending(self):
        return [t for t in self.submitted if t.endswith("~1")]


@pytest.fixture()
def store(tmp_path):
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    s.upsert_campaign("c")
    s.upsert_phase("c", 1)
    return s


def tasks(desk, n=3):
    out = []
    for i in range(n):
        tid = desk.task_id(1, f"pair{i}", "ev")
        out.append((HumanTask(task_id=tid, kind="ev", media_id=media_key("base", 224, 0, i), phrase="triangle"),
                    f"pair{i}", "ev"))
    return out


def test_deadline_requeue_and_duplicates_applied_once(store):
    crowd = SlowCrowd()
    desk = HumanDesk(store, "c", crowd, deadline_s=0.3)
    assert desk.enqueue(1, tasks(desk)) == 3
    assert desk.enqueue(1, tasks(desk)) == 0  # idempotent
    desk.pump()
    assert desk.counts(1) == {"claimed": 3}  # out with the crowd, unanswered
    desk.pump()  # before the deadline nothing is re-queued
    assert desk.stats["requeued"] == 0 and len(crowd.submitted) == 3
    time.sleep(0.4)
    desk.pump()  # past the deadline: re-queued, sent again as attempt 2, answered (twice)
    assert desk.stats["requeued"] == 3
    assert sorted(crowd.submitted[3:]) == sorted(f"{t[0].task_id}~2" for t in tasks(desk))
    assert desk.counts(1) == {"done": 3}
    assert desk.stats["applied"] == 3 and desk.stats["duplicates"] == 3
    results = desk.results(1)
    assert sorted(results) == ["pair0", "pair1", "pair2"]
    assert all(len(r["ev"]) == 1 for r in results.values())  # one rater, applied once
    # a late answer to a finished task changes nothing
    late = crowd.inner
    late.submit([t.model_copy(update={"task_id": t.task_id + "~1"}) for t, _, _ in tasks(desk)])
    applied = desk.collect()
    assert applied == 0 and desk.stats["duplicates"] == 3 + 6  # late answers, each delivered twice
    assert desk.results(1) == results
    decisions = desk.decisions([1])
    assert len(decisions) == 3 and {d.kind for d in decisions} == {"ev"}
    assert {logical_id(f"{d.task_id}~7") for d in decisions} == {t[0].task_id for t in tasks(desk)}


def test_claims_of_a_dead_process_are_requeued(store):
    desk = HumanDesk(store, "c", SlowCrowd(), deadline_s=3600)
    desk.enqueue(1, tasks(desk, 2))
    desk.dispatch()
    assert desk.counts(1) == {"claimed": 2}
    # a new process with an in-memory backend cannot see the old claims: they go back to the queue
    fresh = HumanDesk(store, "c", SimulatedBackend(seed=3), deadline_s=3600)
    assert fresh.stats["requeued"] == 2 and fresh.counts(1) == {"queued": 2}
    fresh.pump()
    assert fresh.counts(1) == {"done": 2}


def test_simulated_answers_do_not_depend_on_the_attempt(store):
    a, b = SimulatedBackend(seed=5), SimulatedBackend(seed=5)
    (t, _, _), = tasks(HumanDesk(store, "c", None), 1)
    a.submit([t.model_copy(update={"task_id": t.task_id + "~1"})])
    b.submit([t.model_copy(update={"task_id": t.task_id + "~4"})])
    ra, rb = a.collect()[0], b.collect()[0]
    assert (ra.label, ra.seconds) == (rb.label, rb.seconds)


def test_budget_cancels_the_rest(store):
    desk = HumanDesk(store, "c", SimulatedBackend(seed=1), budget_s=1.0)
    desk.enqueue(1, tasks(desk, 2))
    desk.pump()  # the first round goes out (nothing spent yet) and costs ~60 s
    desk.enqueue(1, [(HumanTask(task_id=desk.task_id(1, "more", "ev"), kind="ev",
                                media_id=media_key("base", 224, 0, 9), phrase="circle"), "more", "ev")])
    desk.pump()
    assert desk.counts(1) == {"done": 2, "cancelled": 1}
    assert desk.results(1)["more"]["ev"] == "cancelled"


def test_backend_from_config_simulated_label_studio_none():
    from engine.campaign.config import parse_config
    from engine.campaign.humans import make_backend
    from engine.humans.base import HumanBackend
    from tests.campaign_support import TINY, merge

    sim = make_backend(parse_config(merge(TINY, {"root": "/tmp/x"})).humans)
    assert isinstance(sim, SimulatedBackend) and isinstance(sim, HumanBackend) and not sim.durable
    cfg = parse_config(merge(TINY, {"root": "/tmp/x", "humans": {
        "backend": "label_studio", "label_studio": {"url": "http://127.0.0.1:9", "api_key": "k"}}}))
    ls = make_backend(cfg.humans, cfg.name)
    assert isinstance(ls, HumanBackend) and ls.durable and ls.settings.campaign == "tiny"
    syn_only = merge(TINY, {"root": "/tmp/x", "humans": {"backend": "none"}, "verifiers": {"init": "/v"},
                            "phases": [{"index": 1, "mode": "syn", "images": 1}]})
    assert make_backend(parse_config(syn_only).humans) is None
