"""sam3_campaign end to end under `dag.test()` on a tiny shapes-world campaign (one human phase,
4 images, retrain on) against a real local
Ray head: the engine steps run in the task (their Ray Data stages on the head), annotate and retrain
run as Ray jobs through our RayJobOperator, humans are the simulated annotators. Then the same run
again: every task re-runs and no output is duplicated."""

# ruff: noqa: I001  (tests.airflow_env must be imported before airflow)
from __future__ import annotations

import tests.airflow_env  # noqa: F401  (Airflow settings before airflow is imported)

import os
from pathlib import Path

import pendulum
import pytest

from tests.campaign_support import write_config
from tests.dag_runs import get_dag, task_states, xcom

PHASES = [{"index": 1, "mode": "human", "domain": "base", "images": 4, "per_unit": 2}]
WHEN = pendulum.datetime(2026, 2, 1, tz="UTC")


def outputs(root: Path) -> dict[str, int]:
    """Files under the campaign folder by kind (stage parts, shards, exports, markers)."""
    files = [p for p in (root / "campaigns" / "dagcamp").rglob("*") if p.is_file()]
    return {"parquet": sum(p.suffix == ".parquet" for p in files), "tar": sum(p.suffix == ".tar" for p in files),
            "saco": sum(p.name == "saco.json" for p in files), "all": len(files)}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, ray_cluster):
    import ray

    folder = tmp_path_factory.mktemp("dagcamp")
    path = write_config(folder, name="dagcamp", phases=PHASES, verifiers={"embedder": "hashing"},
                        executor={"kind": "ray", "address": ray_cluster.gcs},
                        retrain={"enabled": True, "steps": 2, "max_time_s": 30, "gold_images": 2,
                                 "gold_negatives": 2})
    os.environ["AIRFLOW_CONN_RAY_DAGTEST"] = ray_cluster.dashboard
    conf = {"config_uri": str(path), "ray_conn_id": "ray_dagtest", "human_poll_seconds": 1,
            "human_timeout_hours": 0.05}
    try:
        dag = get_dag("sam3_campaign")
        run = dag.test(run_conf=conf, logical_date=WHEN, run_after=WHEN)
        yield {"path": path, "root": folder / "root", "dag": dag, "conf": conf, "run": run,
               "states": task_states(run), "outputs": outputs(folder / "root"), "ray": ray_cluster}
    finally:
        os.environ.pop("AIRFLOW_CONN_RAY_DAGTEST", None)
        if ray.is_initialized():
            ray.shutdown()  # the tasks' Ray Data driver connection in this process


def test_campaign_runs_end_to_end_with_annotate_and_retrain_as_ray_jobs(campaign):
    from ray.job_submission import JobSubmissionClient

    run, states = campaign["run"], campaign["states"]
    assert str(run.state) == "success", states
    for k in (1,):
        for name in ("enter", "plan", "propose", "annotate_ray", "annotate", "await_humans", "consolidate",
                     "retrain_ray", "retrain", "evaluate", "promote", "close"):
            assert states[f"phase_{k}.{name}"] == "success", (k, name, states[f"phase_{k}.{name}"])
        assert states[f"phase_{k}.annotate_inline"] == "skipped"
        assert states[f"phase_{k}.retrain_inline"] == "skipped"
    for k in (2, 3, 4):  # the campaign has one phase: the other slots skip
        assert states[f"phase_{k}.enter"] == "success" and not xcom(run, f"phase_{k}.enter")
        assert states[f"phase_{k}.plan"] == "skipped" and states[f"phase_{k}.promote"] == "skipped"
        assert states[f"phase_{k}.close"] == "success"
    assert states["report"] == "success"

    # annotate and retrain ran as Ray jobs on the head and their summaries came back
    jobs = JobSubmissionClient(campaign["ray"].dashboard).list_jobs()
    ours = [j for j in jobs if (j.metadata or {}).get("airflow_dag_id") == "sam3_campaign"]
    assert sorted(j.metadata["airflow_task_id"] for j in ours) == ["phase_1.annotate_ray", "phase_1.retrain_ray"]
    assert all(str(j.status) == "SUCCEEDED" for j in ours)
    assert {j.entrypoint.split(" --phase")[0] for j in ours} == {
        f"sam3-engine campaign step {s} {campaign['path']}" for s in ("annotate", "retrain")}
    annotated = xcom(run, "phase_1.annotate")
    assert annotated["phase"] == 1 and annotated["units"] == 2 and "routes" in annotated
    retrained = xcom(run, "phase_1.retrain")
    assert retrained["phase"] == 1 and retrained["candidate"].startswith("tiny-model:v")

    # humans answered through the deferred wait; consolidate wrote shards and the SA-Co export
    assert xcom(run, "phase_1.await_humans")["done"] is True
    assert xcom(run, "phase_1.await_humans")["human_pairs"] > 0
    assert campaign["outputs"]["tar"] >= 1 and campaign["outputs"]["saco"] == 1
    promoted = xcom(run, "phase_1.promote")
    assert set(promoted) >= {"phase", "promoted", "reason"}
    assert Path(xcom(run, "report")["html"].removeprefix("file://")).is_file()


def test_rerunning_the_run_does_not_duplicate_outputs(campaign):
    from engine.campaign.steps import open_campaign
    from model.registry import ModelRegistry

    c = open_campaign(str(campaign["path"]))
    humans_before = c.desk.counts(1)
    cfg = c.cfg
    versions_before = [v.ref for v in ModelRegistry(cfg.root, state=cfg.state).list()]

    again = campaign["dag"].test(run_conf=campaign["conf"], logical_date=WHEN, run_after=WHEN)
    assert again.run_id == campaign["run"].run_id  # the same run: its tasks ran a second time
    assert str(again.state) == "success", task_states(again)
    assert outputs(campaign["root"]) == campaign["outputs"]
    c = open_campaign(str(campaign["path"]))
    assert c.desk.counts(1) == humans_before and humans_before.get("done", 0) > 0
    assert [v.ref for v in ModelRegistry(cfg.root, state=cfg.state).list()] == versions_before
