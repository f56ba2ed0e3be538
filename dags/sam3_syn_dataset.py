"""sam3_syn_dataset: a fully automatic domain dataset (SA-Co/SYN style): no human tasks at all.

The campaign config's phases must all be `mode: syn` (AI verifiers decide everything; start with
`verifiers.init` set). start -> per phase: plan -> propose -> annotate (Ray job, or in the worker
for `executor.kind: inline`) -> consolidate (shards + SA-Co export) -> report. The DAG refuses a
config with human phases before any work runs.

    airflow dags trigger sam3_syn_dataset --conf '{"config_uri": "s3://sam3/campaigns/syn-night.yaml"}'
"""

from __future__ import annotations

from airflow.sdk import dag

from orchestration.campaign_flow import campaign_params, campaign_tasks


@dag(dag_id="sam3_syn_dataset", schedule=None, catchup=False, max_active_runs=4, tags=["sam3"],
     params=campaign_params(humans=False), doc_md=__doc__)
def sam3_syn_dataset():
    campaign_tasks(humans=False, syn_only=True)


sam3_syn_dataset()
