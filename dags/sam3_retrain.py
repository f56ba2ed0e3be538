"""sam3_retrain: retrain a SAM 3 model from given WebDataset shards, evaluate it on a gold set,
promote it if its gold cgF1 did not regress. Thin: each task calls `orchestration.retrain_flow`
(over `model.retrain` / `model.gold_eval` / `model.registry`); a re-run task reuses its outputs.

    airflow dags trigger sam3_retrain --conf '{"shards": ["s3://b/campaigns/x/phase-1/shards/train-000000.tar"],
        "gold": "s3://b/gold/saco_gold.json", "registry_root": "s3://b/sam3", "state_url": "postgresql://...",
        "model_name": "sam3-prod", "preset": "full", "steps": 2000}'
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

PARAMS = {
    "shards": Param(type="array", items={"type": "string", "minLength": 1}, minItems=1,
                    description="WebDataset shard URIs to train on (file paths or s3:// URIs)"),
    "gold": Param(type="string", minLength=1, description="SA-Co gold JSON to evaluate on (images beside it)"),
    "registry_root": Param(type="string", minLength=1, description="model registry storage root"),
    "state_url": Param(None, type=["null", "string"], description="registry index (SQLAlchemy URL); "
                       "default: SQLite under a local registry root"),
    "model_name": Param("sam3", type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"),
    "preset": Param("tiny", type="string", enum=["tiny", "full"]),
    "parent": Param(None, type=["null", "string"], description="registry ref to fine-tune (default: fresh preset)"),
    "steps": Param(200, type="integer", minimum=1),
    "workers": Param(0, type="integer", minimum=0, description="Ray Train workers (0: in the task)"),
    "train_config": Param({}, type="object", description="extra model.train.TrainConfig fields"),
}


@dag(dag_id="sam3_retrain", schedule=None, catchup=False, params=PARAMS, tags=["sam3"],
     doc_md=__doc__)
def sam3_retrain():
    @task
    def retrain(params=None, dag_run=None) -> dict:
        from orchestration.retrain_flow import retrain_step

        return retrain_step(params["shards"], params["model_name"], params["registry_root"],
                            f"{dag_run.dag_id}/{dag_run.run_id}", state_url=params["state_url"],
                            preset=params["preset"], steps=params["steps"], parent=params["parent"],
                            config=params["train_config"], workers=params["workers"])

    @task
    def evaluate(trained: dict, params=None) -> dict:
        from orchestration.retrain_flow import evaluate_step

        return evaluate_step(trained["ref"], params["gold"], params["registry_root"],
                             state_url=params["state_url"])

    @task
    def promote(evaluation: dict, params=None) -> dict:
        from orchestration.retrain_flow import promote_step

        return promote_step(evaluation, params["registry_root"], state_url=params["state_url"])

    promote(evaluate(retrain()))


sam3_retrain()
