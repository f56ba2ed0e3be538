"""The DAGs in dags/: they import cleanly, bad params are refused before any task runs, and
`dag.test()` runs sam3_retrain end to end on tiny shards, twice in the same run without
duplicating its registry version."""

# ruff: noqa: I001  (tests.airflow_env must be imported before airflow)
from __future__ import annotations

import tests.airflow_env  # noqa: F401  (Airflow settings before airflow is imported)

import itertools

import pendulum
import pytest

from tests.dag_runs import dag_bag, get_dag, task_states, xcom

DAG_IDS = {"sam3_campaign", "sam3_syn_dataset", "sam3_retrain"}


def test_every_dag_file_imports_without_errors():
    bag = dag_bag()
    assert bag.import_errors == {}
    assert set(bag.dags) == DAG_IDS
    for dag in bag.dags.values():
        assert dag.schedule is None or dag.timetable.summary == "None"
        assert "sam3" in dag.tags


def test_campaign_dag_has_a_task_group_per_phase_slot_in_loop_order():
    from orchestration.campaign_flow import MAX_PHASES

    dag = dag_bag().dags["sam3_campaign"]
    groups = [g for g in dag.task_group.children if g.startswith("phase_")]
    assert groups == [f"phase_{k}" for k in range(1, MAX_PHASES + 1)]
    order = ["enter", "plan", "propose", "annotate", "await_humans", "consolidate", "retrain",
             "evaluate", "promote", "close"]
    for a, b in itertools.pairwise(order):
        assert f"phase_1.{a}" in dag.task_dict[f"phase_1.{b}"].get_flat_relative_ids(upstream=True), (a, b)
    assert dag.task_dict["phase_1.annotate_ray"].task_type == "RayJobOperator"
    assert dag.task_dict["phase_1.retrain_ray"].task_type == "RayJobOperator"
    assert dag.task_dict["phase_1.await_humans"].task_type == "DeferredPollOperator"
    assert "phase_1.close" in dag.task_dict["phase_2.enter"].upstream_task_ids
    syn = dag_bag().dags["sam3_syn_dataset"]
    assert not any("await_humans" in t or "retrain" in t for t in syn.task_dict)


@pytest.mark.parametrize("dag_id,conf,bad", [
    ("sam3_campaign", {"config_uri": "relative/campaign.yaml"}, "config_uri"),
    ("sam3_campaign", {"config_uri": "/x/c.yaml; rm -rf /"}, "config_uri"),
    ("sam3_campaign", {"config_uri": "/x/c.yaml", "human_timeout_hours": 0}, "human_timeout_hours"),
    ("sam3_syn_dataset", {}, "config_uri"),
    ("sam3_retrain", {"shards": [], "gold": "/g.json", "registry_root": "/r"}, "shards"),
    ("sam3_retrain", {"shards": ["/s.tar"], "gold": "/g.json", "registry_root": "/r", "steps": 0}, "steps"),
    ("sam3_retrain", {"shards": ["/s.tar"], "gold": "/g.json", "registry_root": "/r",
                      "model_name": "bad name!"}, "model_name"),
])
def test_bad_params_are_rejected_before_any_task_runs(dag_id, conf, bad):
    from airflow.models.dagrun import DagRun
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.utils.session import create_session

    dag = get_dag(dag_id)
    with create_session() as session:
        before = len(DagRun.find(dag_id=dag_id, session=session))
    with pytest.raises(ParamValidationError, match=bad):
        dag.test(run_conf=conf)
    with create_session() as session:
        assert len(DagRun.find(dag_id=dag_id, session=session)) == before  # no run, so no task ran


@pytest.mark.slow
def test_retrain_dag_end_to_end_and_a_rerun_reuses_its_outputs(tmp_path):
    from engine.cli.world import generate, write_world_shards
    from model.registry import ModelRegistry

    shards = write_world_shards(str(tmp_path / "shards"), 4, seed=1, negatives_per_image=2, max_samples=2)
    gold = generate(str(tmp_path / "gold"), 2, seed=2, negatives_per_image=2, progress=False)["gold"]
    registry_root = str(tmp_path / "registry")
    conf = {"shards": shards, "gold": gold, "registry_root": registry_root, "model_name": "dagtest",
            "steps": 2}
    dag = get_dag("sam3_retrain")
    when = pendulum.datetime(2026, 1, 1, tz="UTC")

    dr = dag.test(run_conf=conf, logical_date=when, run_after=when)
    assert str(dr.state) == "success", task_states(dr)
    trained = xcom(dr, "retrain")
    assert trained["ref"] == "dagtest:v0001" and trained["steps"] == 2 and trained["reused"] is False
    evaluation = xcom(dr, "evaluate")
    assert evaluation["candidate_ref"] == "dagtest:v0001" and evaluation["baseline"] is None
    assert 0 <= evaluation["candidate"]["cgF1"] <= 100
    assert xcom(dr, "promote") == {"promoted": True, "ref": "dagtest:v0001",
                                   "reason": "no promoted version before"}

    # the same run again (same run id): every task re-runs, nothing is duplicated
    dr = dag.test(run_conf=conf, logical_date=when, run_after=when)
    assert str(dr.state) == "success", task_states(dr)
    assert xcom(dr, "retrain")["reused"] is True and xcom(dr, "retrain")["ref"] == "dagtest:v0001"
    assert xcom(dr, "evaluate")["candidate"] == evaluation["candidate"]
    versions = ModelRegistry(registry_root).list("dagtest")
    assert [(v.version, v.promoted) for v in versions] == [("v0001", True)]
