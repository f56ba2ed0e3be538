"""sam3_campaign: one DAG run per annotation campaign (param `config_uri`, a campaign.yaml).

start -> per phase (task group `phase_<n>`): plan -> propose -> annotate (a Ray job, or in the
worker for `executor.kind: inline`) -> await humans (deferred, with a timeout) -> consolidate ->
retrain (Ray job) -> evaluate -> promote or stop -> report. Every task calls
`engine.campaign.steps` (directly or through `sam3-engine campaign step` on Ray); the wiring lives
in `orchestration.campaign_flow`.

    airflow dags trigger sam3_campaign --conf '{"config_uri": "s3://sam3/campaigns/cars.yaml"}'
"""

from __future__ import annotations

from airflow.sdk import dag

from orchestration.campaign_flow import campaign_params, campaign_tasks


@dag(dag_id="sam3_campaign", schedule=None, catchup=False, max_active_runs=4, tags=["sam3"],
     params=campaign_params(humans=True), doc_md=__doc__)
def sam3_campaign():
    campaign_tasks(humans=True)


sam3_campaign()
