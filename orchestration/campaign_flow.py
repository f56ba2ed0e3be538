"""Task-group builders the campaign DAGs share: one group per campaign phase, each step a call into
`engine.campaign.steps` (in the Airflow worker) or a Ray job running `sam3-engine campaign step`.

A DAG's shape is fixed when it is parsed, but a campaign's phases come from its config, so a DAG
has `MAX_PHASES` phase slots. `phase_<n>.enter` (a short-circuit task) turns slot n into the
campaign's n-th phase index, or skips the slot when the campaign has fewer phases or was stopped.
`phase_<n>.close` always runs (trigger rule none_failed) and hands the stop flag to slot n+1: a
phase whose gold gate refused the candidate (cgF1 regressed) stops the campaign when the DAG param
`stop_on_regression` is true. Steps that run on Ray (annotate, retrain) go through
`RayJobOperator` unless the campaign's `executor.kind` is `inline`, in which case they run in the
worker like the other steps.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, task, task_group

from orchestration.poll import DeferredPollOperator
from orchestration.ray_jobs import RayJobOperator

MAX_PHASES = 4
RAY_JOB_TIMEOUT = timedelta(hours=12)
# A config URI the Ray workers can read too: an absolute path or an object-store URI, no spaces/quotes.
CONFIG_URI_PATTERN = r"^(/|file:///|s3://)[^\s'\"`$;&|<>]+\.ya?ml$"


def campaign_params(humans: bool) -> dict:
    params = {
        "config_uri": Param(type="string", pattern=CONFIG_URI_PATTERN,
                            description="campaign.yaml: an absolute path or s3:// URI readable by "
                                        "the Airflow workers and the Ray cluster"),
        "ray_conn_id": Param("ray_default", type="string", minLength=1,
                             description="Airflow connection of the Ray dashboard (Jobs API)"),
    }
    if humans:
        params.update({
            "human_poll_seconds": Param(60, type="number", exclusiveMinimum=0,
                                        description="how often the deferred wait asks the human desk"),
            "human_timeout_hours": Param(48, type="number", exclusiveMinimum=0,
                                         description="fail the wait after this long (a retry resumes)"),
            "stop_on_regression": Param(True, type="boolean",
                                        description="stop the campaign when a phase's candidate "
                                                    "regresses gold cgF1 (else go on with the old model)"),
        })
    return params


@task
def start(max_phases: int = MAX_PHASES, syn_only: bool = False, params=None) -> dict:
    from engine.campaign.config import load_config
    from engine.campaign.steps import start as start_campaign

    uri = params["config_uri"]
    cfg = load_config(uri)
    if len(cfg.phases) > max_phases:
        raise ValueError(f"campaign {cfg.name!r} has {len(cfg.phases)} phases; this DAG runs at most "
                         f"{max_phases} (orchestration.campaign_flow.MAX_PHASES)")
    if syn_only:
        humans = [f"phase {p.index} (mode {p.mode!r})" for p in cfg.phases if p.mode != "syn"]
        if humans:
            raise ValueError(f"sam3_syn_dataset runs fully automatic campaigns only; {uri} has human "
                             f"work in {', '.join(humans)}: use sam3_campaign")
    return {**start_campaign(uri), "executor": cfg.executor.kind}


@task
def step(name: str, phase: int, params=None) -> dict:
    from engine.campaign.steps import run_step

    return run_step(params["config_uri"], name, phase)


@task
def report(last: dict | None = None, params=None) -> dict:
    from engine.campaign.steps import report as campaign_report

    return campaign_report(params["config_uri"])


@task.short_circuit(ignore_downstream_trigger_rules=False)
def enter(started: dict, previous: dict | None, slot: int) -> int:
    """The phase index slot `slot` runs, or 0 to skip the slot."""
    if previous and previous.get("stopped"):
        return 0
    phases = started["phases"]
    return phases[slot - 1] if slot <= len(phases) else 0


@task(trigger_rule=TriggerRule.NONE_FAILED)
def close(promoted: dict | None, previous: dict | None, params=None) -> dict:
    """Carry the stop flag to the next slot (set when this phase's gold gate saw a regression)."""
    if previous and previous.get("stopped"):
        return previous
    regressed = bool(promoted and promoted.get("regressed_domains"))
    stop = regressed and bool(params.get("stop_on_regression", False))
    return {"stopped": stop, "phase": (promoted or {}).get("phase"),
            "reason": promoted.get("reason") if stop else None}


@task.branch
def where(started: dict, inline_id: str, ray_id: str) -> str:
    return inline_id if started["executor"] == "inline" else ray_id


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def joined(inline: dict | None, on_ray: dict | None) -> dict:
    """The step's summary, whichever way it ran (a Ray job's summary is its last stdout line)."""
    return inline if inline is not None else (on_ray or {}).get("result") or {}


def ray_or_inline(name: str, started, phase, group_id: str, after):
    """`name` (after task `after`) as a Ray job or in the worker, by the campaign's executor;
    returns its summary (the `name` join task's output)."""
    inline_id, ray_id = f"{name}_inline", f"{name}_ray"
    choose = where.override(task_id=f"{name}_where")(started, f"{group_id}.{inline_id}", f"{group_id}.{ray_id}")
    inline = step.override(task_id=inline_id)(name, phase)
    on_ray = RayJobOperator(
        task_id=ray_id, conn_id="{{ params.ray_conn_id }}", job_timeout=RAY_JOB_TIMEOUT,
        poll_seconds=5, log_batch_seconds=30,
        entrypoint=(f"sam3-engine campaign step {name} {{{{ params.config_uri }}}} "
                    f"--phase {{{{ ti.xcom_pull(task_ids='{group_id}.enter') }}}}"))
    after >> choose >> [inline, on_ray]
    phase >> on_ray
    return joined.override(task_id=name)(inline, on_ray.output)


def phase_slot(slot: int, started, previous, *, humans: bool):
    """Task group `phase_<slot>`; returns its `close` output (the next slot's `previous`)."""
    group_id = f"phase_{slot}"

    @task_group(group_id=group_id)
    def group():
        phase = enter.override(task_id="enter")(started, previous, slot)
        planned = step.override(task_id="plan")("plan", phase)
        proposed = step.override(task_id="propose")("propose", phase)
        planned >> proposed
        annotated = ray_or_inline("annotate", started, phase, group_id, after=proposed)
        if humans:
            waited = DeferredPollOperator(
                task_id="await_humans", target="engine.campaign.steps.await_humans",
                call_kwargs={"config_uri": "{{ params.config_uri }}", "phase": phase},
                poll_seconds="{{ params.human_poll_seconds }}",
                timeout="{{ params.human_timeout_hours * 3600 }}")
            annotated >> waited
            last = waited
        else:
            last = annotated
        consolidated = step.override(task_id="consolidate")("consolidate", phase)
        last >> consolidated
        if not humans:
            closing = close.override(task_id="close")(None, previous)
            consolidated >> closing
            return closing
        retrained = ray_or_inline("retrain", started, phase, group_id, after=consolidated)
        evaluated = step.override(task_id="evaluate")("evaluate", phase)
        promoted = step.override(task_id="promote")("promote", phase)
        retrained >> evaluated >> promoted
        return close.override(task_id="close")(promoted, previous)

    return group()


def campaign_tasks(*, humans: bool, syn_only: bool = False, max_phases: int = MAX_PHASES):
    """start -> phase_1 .. phase_<max_phases> -> report."""
    started = start(max_phases, syn_only)
    previous = None
    for slot in range(1, max_phases + 1):
        previous = phase_slot(slot, started, previous, humans=humans)
    report.override(trigger_rule=TriggerRule.NONE_FAILED)(previous)
