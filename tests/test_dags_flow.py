"""The control flow of sam3_campaign under `dag.test()`, with the engine's step functions replaced
by recording fakes (the real engine runs in tests/test_dags_campaign.py): phase slots follow the
config's phases, a gold-gate regression stops the campaign (or not, by param), the wait for humans
defers and polls until done, and fails the task at its timeout."""

# ruff: noqa: I001  (tests.airflow_env must be imported before airflow)
from __future__ import annotations

import tests.airflow_env  # noqa: F401  (Airflow settings before airflow is imported)

from types import SimpleNamespace

import pytest

from tests.dag_runs import get_dag, task_states, xcom

URI = "/campaigns/fake/campaign.yaml"


class FakeEngine:
    def __init__(self, phases=(1, 2, 3), regress=(), pending=None):
        self.phases, self.regress = list(phases), set(regress)
        self.pending = list(pending or [])  # await_humans answers, in order; then done
        self.calls: list[tuple] = []

    def load_config(self, uri):
        return SimpleNamespace(name="fake", executor=SimpleNamespace(kind="inline"),
                               phases=[SimpleNamespace(index=k, mode="human") for k in self.phases])

    def start(self, uri):
        self.calls.append(("start",))
        return {"campaign": "fake", "phases": self.phases}

    def run_step(self, uri, step, phase):
        self.calls.append((step, phase))
        if step == "promote":
            bad = phase in self.regress
            return {"phase": phase, "promoted": not bad, "regressed_domains": ["base"] if bad else [],
                    "reason": "gold cgF1 regressed on base" if bad else "ok"}
        return {"phase": phase, "step": step}

    def await_humans(self, config_uri, phase):
        self.calls.append(("await_humans", phase))
        left = self.pending.pop(0) if self.pending else 0
        return {"phase": phase, "pending": left, "done": left == 0}

    def report(self, uri):
        self.calls.append(("report",))
        return {"html": "/dev/null"}


@pytest.fixture
def engine(monkeypatch):
    from engine.campaign import config, steps

    def install(**kw):
        fake = FakeEngine(**kw)
        monkeypatch.setattr(config, "load_config", fake.load_config)
        for name in ("start", "run_step", "await_humans", "report"):
            monkeypatch.setattr(steps, name, getattr(fake, name))
        return fake
    return install


def run(conf: dict):
    dag = get_dag("sam3_campaign")
    dr = dag.test(run_conf={"config_uri": URI, "human_poll_seconds": 0.2, **conf})
    return dr, task_states(dr)


def phase_steps(calls, phase):
    return [c[0] for c in calls if len(c) == 2 and c[1] == phase]


LOOP = ["plan", "propose", "annotate", "await_humans", "consolidate", "retrain", "evaluate", "promote"]


def test_phase_slots_follow_the_configs_phases(engine):
    fake = engine(phases=(2, 5))
    dr, states = run({})
    assert str(dr.state) == "success", states
    assert phase_steps(fake.calls, 2) == LOOP and phase_steps(fake.calls, 5) == LOOP
    assert [c[0] for c in fake.calls if len(c) == 1] == ["start", "report"]
    assert xcom(dr, "phase_1.enter") == 2 and xcom(dr, "phase_2.enter") == 5
    for slot in (3, 4):
        assert states[f"phase_{slot}.plan"] == "skipped" and states[f"phase_{slot}.close"] == "success"
    assert states["phase_1.annotate_ray"] == "skipped" and states["phase_1.annotate_inline"] == "success"


def test_a_gold_regression_stops_the_campaign(engine):
    fake = engine(phases=(1, 2, 3), regress={1})
    dr, states = run({"stop_on_regression": True})
    assert str(dr.state) == "success", states
    assert phase_steps(fake.calls, 1) == LOOP
    assert phase_steps(fake.calls, 2) == [] and phase_steps(fake.calls, 3) == []
    assert xcom(dr, "phase_1.close")["stopped"] is True
    assert "regressed" in xcom(dr, "phase_1.close")["reason"]
    assert states["phase_2.plan"] == "skipped" and states["phase_3.promote"] == "skipped"
    assert states["report"] == "success"


def test_without_stop_on_regression_the_next_phases_run(engine):
    fake = engine(phases=(1, 2), regress={1})
    dr, states = run({"stop_on_regression": False})
    assert str(dr.state) == "success", states
    assert phase_steps(fake.calls, 2) == LOOP


def test_the_wait_for_humans_defers_and_polls_until_done(engine):
    fake = engine(phases=(1,), pending=[3, 2, 1])
    dr, states = run({})
    assert str(dr.state) == "success", states
    assert phase_steps(fake.calls, 1).count("await_humans") == 4  # once in the task, 3 polls deferred
    assert xcom(dr, "phase_1.await_humans") == {"phase": 1, "pending": 0, "done": True}


def test_the_wait_for_humans_fails_at_its_timeout(engine):
    fake = engine(phases=(1,), pending=[5] * 1000)
    dr, states = run({"human_timeout_hours": 1 / 3600})  # one second
    assert str(dr.state) == "failed"
    assert states["phase_1.await_humans"] == "failed"
    assert states["phase_1.consolidate"] == "upstream_failed"
    assert "consolidate" not in phase_steps(fake.calls, 1)
