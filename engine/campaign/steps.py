"""The campaign step functions (the contract Airflow tasks and the CLI call), each idempotent.

    start(config_uri)                  validate + freeze campaign.yaml, register campaign and phases,
                                       initial model, gold sets, baseline gold metrics
    plan / propose / annotate(config_uri, phase)     per work unit, skipping units with a marker
    await_humans(config_uri, phase)    pump the human desk, queue follow-up tasks -> {"pending", "done"}
    consolidate(config_uri, phase)     final pairs -> shards + SA-Co export
    retrain / evaluate / promote(config_uri, phase)  model layer, gold gate (no regression), re-propose
    report(config_uri)                 report.json + index.html
    run_campaign(config_uri)           everything in order

Every function returns a small JSON-serialisable dict. A rerun skips finished work through the
completion markers (`engine.campaign.layout`) and the state store, and never duplicates outputs:
unit parts are overwritten with identical content, human tasks are enqueued under dedup keys, phase
steps keep their result in a `_SUCCESS.json` marker. `engine.campaign.runtime.Campaign` holds what the
steps of one process share.
"""

from __future__ import annotations

from engine.campaign import models
from engine.campaign.config import CampaignConfig, ConfigError, dump_config, parse_config
from engine.campaign.runtime import Campaign, _fault, open_campaign
from engine.campaign.sources import phase_units


# ---- start -----------------------------------------------------------------------------------------
def _start(c: Campaign) -> dict:
    cfg, layout = c.cfg, c.layout
    frozen = layout.path("campaign.yaml")
    text = dump_config(cfg)
    if layout.store.exists(frozen):
        import yaml

        # compared as validated configs, so a field added to CampaignConfig later (with its default)
        # does not stop a campaign started before from resuming
        a = parse_config(yaml.safe_load(layout.store.read_bytes(frozen).decode()), frozen).model_dump(mode="json")
        b = cfg.model_dump(mode="json")
        if a != b:
            diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            raise ConfigError(f"campaign {cfg.name!r} was started with a different config ({layout.store.uri(frozen)}); "
                              f"fields that differ: {', '.join(diff)}")
    else:
        layout.store.write_bytes(frozen, text.encode())
    c.state.upsert_campaign(cfg.name, config=cfg.model_dump(mode="json"))
    for p in cfg.phases:
        c.state.upsert_phase(cfg.name, p.index, name=p.mode)
    ref = models.ensure_initial_model(cfg)
    golds = models.gold_sets(cfg)
    baseline = models.gold_metrics(cfg, ref) if golds else {}
    layout.mark(layout.path("start.json"), {"initial_model": ref, "gold": golds, "baseline": baseline})
    return {"campaign": cfg.name, "phases": [p.index for p in cfg.phases], "model": ref, "gold": golds,
            "baseline_gold": baseline, "config": layout.store.uri(frozen)}


def _ensure_started(c: Campaign) -> None:
    if not c.layout.store.exists(c.layout.path("start.json")):
        _start(c)


def start(config_uri: str) -> dict:
    return _start(open_campaign(config_uri))


# ---- per-unit stages -------------------------------------------------------------------------------
def _plan(c: Campaign, phase: int) -> dict:
    _ensure_started(c)
    c.state.upsert_phase(c.cfg.name, phase, status="running")
    units = phase_units(c.cfg, phase, c.layout.store)
    todo = c.register_units(phase, "plan", units)
    done = c.run_units(phase, "plan", c.executor.plan(c.spec(phase), {u: units[u] for u in todo}), len(todo),
                       len(units))
    return {"phase": phase, "units": len(units), "ran": len(done), "pairs": _sum(c, phase, "plan", units)}


def _sum(c: Campaign, phase: int, stage: str, units, key: str = "pairs") -> int:
    total = 0
    for u in units:
        m = c.layout.unit_done(phase, stage, u)
        total += (m or {}).get(key, 0)
    return total


def _require(c: Campaign, phase: int, stage: str, units, before: str) -> None:
    missing = [u for u in units if c.layout.unit_done(phase, stage, u) is None]
    if missing:
        raise RuntimeError(f"phase {phase}: {len(missing)} unit(s) have not finished {stage!r} "
                           f"(e.g. {missing[0]}); run {stage} before {before}")


def _propose(c: Campaign, phase: int) -> dict:
    _ensure_started(c)
    units = list(phase_units(c.cfg, phase, c.layout.store))
    _require(c, phase, "plan", units, "propose")
    ref = models.promoted_ref(c.cfg)
    stale = []
    for u in units:  # pairs proposed by an older model and not routed yet are re-proposed by the new one
        m = c.layout.unit_done(phase, "propose", u)
        if m and m.get("model_version") != ref and c.layout.unit_done(phase, "annotate", u) is None:
            c.layout.clear_unit(phase, "propose", u)
            stale.append(u)
    todo = c.register_units(phase, "propose", units)
    done = c.run_units(phase, "propose", c.executor.propose(c.spec(phase, model_ref=ref), todo), len(todo),
                       len(units))
    return {"phase": phase, "units": len(units), "ran": len(done), "re_proposed": len(stale), "model": ref,
            "masks": _sum(c, phase, "propose", units, "masks")}


def _annotate(c: Campaign, phase: int) -> dict:
    from engine.campaign.verifier_ops import phase_verifiers

    _ensure_started(c)
    units = list(phase_units(c.cfg, phase, c.layout.store))
    _require(c, phase, "propose", units, "annotate")
    ver = phase_verifiers(c.cfg, phase, c.desk) if c.cfg.phase(phase).mode != "human" else {}
    todo = c.register_units(phase, "annotate", units)
    spec = c.spec(phase, verifier_dir=ver.get("dir"), thresholds=ver.get("thresholds"))
    done = c.run_units(phase, "annotate", c.executor.annotate(spec, todo), len(todo), len(units))
    routes: dict[str, int] = {}
    for u in units:
        for k, v in ((c.layout.unit_done(phase, "annotate", u) or {}).get("routes") or {}).items():
            routes[k] = routes.get(k, 0) + v
    return {"phase": phase, "units": len(units), "ran": len(done), "routes": routes,
            "verifiers": ver.get("version"), "thresholds": ver.get("thresholds")}


def _human_rows(c: Campaign, phase: int, units) -> list[dict]:
    rows = []
    for u in units:
        rows.extend(r for r in c.layout.read_stage(phase, "annotate", u) if r["route"]["outcome"] == "human")
    return rows


def _await(c: Campaign, phase: int, max_rounds: int = 25) -> dict:
    from engine.campaign.executors import context_of
    from engine.campaign.routing import human_step
    from engine.campaign.stages import human_tasks
    from storage.records import Instance

    _ensure_started(c)
    units = list(phase_units(c.cfg, phase, c.layout.store))
    _require(c, phase, "annotate", units, "await_humans")
    ctx = context_of(c.spec(phase))
    rows = _human_rows(c, phase, units)
    desk = c.desk
    unresolved, rounds = 0, 0
    for rounds in range(1, max_rounds + 1):
        before = dict(desk.stats)
        desk.pump()
        if desk.stats["applied"] > before["applied"]:
            _fault("await_humans")
        results = desk.results(phase)
        tasks, unresolved = [], 0
        for row in rows:
            step = human_step(row["route"], results.get(row["pair_id"], {}))
            if not step.final:
                unresolved += 1
                masks = [Instance.model_validate(m) for m in row["masks"]]
                tasks.extend(human_tasks(ctx, desk, masks, row, step.needed, bool(row.get("verifiers"))))
        new = desk.enqueue(phase, tasks)
        if unresolved == 0 or (new == 0 and desk.stats["applied"] == before["applied"]):
            break
    counts = desk.counts(phase)
    pending = counts.get("queued", 0) + counts.get("claimed", 0)
    c.tick(f"phase {phase} humans", len(rows) - unresolved, max(1, len(rows)))
    return {"phase": phase, "pending": pending, "done": unresolved == 0, "unresolved_pairs": unresolved,
            "human_pairs": len(rows), "rounds": rounds, "tasks": counts,
            "duplicates_ignored": desk.stats["duplicates"], "requeued": desk.stats["requeued"]}


def _consolidate(c: Campaign, phase: int) -> dict:
    from engine.campaign.exports import write_phase_outputs

    _ensure_started(c)
    units = list(phase_units(c.cfg, phase, c.layout.store))
    _require(c, phase, "annotate", units, "consolidate")
    todo = c.register_units(phase, "consolidate", units)
    results = c.desk.results(phase) if todo else {}
    per_unit = {}
    for u in todo:
        pids = {r["pair_id"] for r in c.layout.read_stage(phase, "annotate", u)}
        per_unit[u] = {p: results[p] for p in pids if p in results}
    done = c.run_units(phase, "consolidate", c.executor.consolidate(c.spec(phase), per_unit), len(todo), len(units))
    left = [u for u in units if c.layout.unit_done(phase, "consolidate", u) is None]
    if left:
        raise RuntimeError(f"phase {phase}: {len(left)} unit(s) still have pairs waiting for humans "
                           f"(e.g. {left[0]}); run await_humans until it reports done")
    marker = c.layout.step_marker(phase, "consolidate")
    out = c.layout.done(marker)
    if out is None:
        out = c.layout.mark(marker, write_phase_outputs(c.cfg, c.layout, phase, units))
        c.state.upsert_phase(c.cfg.name, phase, status="consolidated")
    return {"phase": phase, "units": len(units), "ran": len(done), **out}


def _retrain(c: Campaign, phase: int) -> dict:
    from model.recipes import TINY_RECIPE
    from model.retrain import retrain as model_retrain

    _ensure_started(c)
    marker = c.layout.step_marker(phase, "retrain")
    hit = c.layout.done(marker)
    if hit is not None:
        return hit
    cfg = c.cfg
    if not (cfg.retrain.enabled and cfg.phase(phase).retrain):
        return c.layout.mark(marker, {"phase": phase, "skipped": "retraining is off for this phase"})
    shards = []
    for p in cfg.phases:
        if p.index > phase or (p.index < phase and not cfg.retrain.cumulative):
            continue
        out = c.layout.done(c.layout.step_marker(p.index, "consolidate")) or {}
        shards.extend(models.local_path(s) for s in out.get("shards", []))
    if not shards:
        return c.layout.mark(marker, {"phase": phase, "skipped": "no shards to train on"})
    parent = models.promoted_ref(cfg)
    config = {**TINY_RECIPE, "seed": cfg.seed}
    if cfg.retrain.max_time_s:
        config["max_time_s"] = cfg.retrain.max_time_s
    out_dir = models.local_path(c.layout.path(f"phase-{phase}", "retrain", "run"))
    rec, result = model_retrain(shards, cfg.model.name, models.registry(cfg), steps=cfg.retrain.steps,
                                parent=parent, config=config, workers=cfg.retrain.workers, out_dir=out_dir)
    return c.layout.mark(marker, {"phase": phase, "candidate": rec.ref, "parent": parent, "steps": result.step,
                                  "seconds": round(result.seconds, 1), "shards": len(shards),
                                  "threads": rec.metrics.get("train", {}).get("threads")})


def _evaluate(c: Campaign, phase: int) -> dict:
    _ensure_started(c)
    marker = c.layout.step_marker(phase, "evaluate")
    hit = c.layout.done(marker)
    if hit is not None:
        return hit
    trained = _retrain_result(c, phase)
    if "candidate" not in trained:
        return c.layout.mark(marker, {"phase": phase, "skipped": trained.get("skipped", "no candidate")})
    if not models.gold_sets(c.cfg):
        return c.layout.mark(marker, {"phase": phase, "candidate": trained["candidate"],
                                      "skipped": "no gold set: gold cgF1 needs ground truth"})
    baseline = models.promoted_ref(c.cfg)
    out = {"phase": phase, "candidate": trained["candidate"], "baseline": baseline,
           "gold": {trained["candidate"]: models.gold_metrics(c.cfg, trained["candidate"]),
                    baseline: models.gold_metrics(c.cfg, baseline)}}
    return c.layout.mark(marker, out)


def _retrain_result(c: Campaign, phase: int) -> dict:
    out = c.layout.done(c.layout.step_marker(phase, "retrain"))
    if out is None:
        raise RuntimeError(f"phase {phase}: run retrain before evaluate/promote")
    return out


def _promote(c: Campaign, phase: int) -> dict:
    _ensure_started(c)
    marker = c.layout.step_marker(phase, "promote")
    hit = c.layout.done(marker)
    if hit is not None:
        c.state.upsert_phase(c.cfg.name, phase, status="done")
        return hit
    ev = c.layout.done(c.layout.step_marker(phase, "evaluate"))
    if ev is None:
        raise RuntimeError(f"phase {phase}: run evaluate before promote")
    out = {"phase": phase, "promoted": False}
    if "gold" not in ev:
        out["reason"] = ev.get("skipped", "nothing evaluated")
    else:
        cand, base = ev["gold"][ev["candidate"]], ev["gold"][ev["baseline"]]
        regressed = sorted(d for d in base if cand[d]["cgF1"] < base[d]["cgF1"] - 1e-9)
        out.update(candidate=ev["candidate"], baseline=ev["baseline"], regressed_domains=regressed)
        if regressed:
            out["reason"] = f"gold cgF1 regressed on {', '.join(regressed)}"
        else:
            models.registry(c.cfg).promote(ev["candidate"])
            out.update(promoted=True, reason="gold cgF1 did not regress on any domain")
    if out["promoted"]:  # later phases: pairs proposed by the old model and not routed yet go again
        stale = 0
        for p in c.cfg.phases:
            if p.index <= phase:
                continue
            for u in phase_units(c.cfg, p.index, c.layout.store):
                m = c.layout.unit_done(p.index, "propose", u)
                if m and c.layout.unit_done(p.index, "annotate", u) is None:
                    c.layout.clear_unit(p.index, "propose", u)
                    stale += 1
        out["re_propose_units"] = stale
    c.state.upsert_phase(c.cfg.name, phase, status="done")
    return c.layout.mark(marker, out)


def _report(c: Campaign) -> dict:
    from engine.campaign.report import write_report

    _ensure_started(c)
    return write_report(c)


# ---- the contract ------------------------------------------------------------------------------------
def plan(config_uri: str, phase: int) -> dict:
    return _plan(open_campaign(config_uri), phase)


def propose(config_uri: str, phase: int) -> dict:
    return _propose(open_campaign(config_uri), phase)


def annotate(config_uri: str, phase: int) -> dict:
    return _annotate(open_campaign(config_uri), phase)


def await_humans(config_uri: str, phase: int) -> dict:
    return _await(open_campaign(config_uri), phase)


def consolidate(config_uri: str, phase: int) -> dict:
    return _consolidate(open_campaign(config_uri), phase)


def retrain(config_uri: str, phase: int) -> dict:
    return _retrain(open_campaign(config_uri), phase)


def evaluate(config_uri: str, phase: int) -> dict:
    return _evaluate(open_campaign(config_uri), phase)


def promote(config_uri: str, phase: int) -> dict:
    return _promote(open_campaign(config_uri), phase)


def report(config_uri: str) -> dict:
    return _report(open_campaign(config_uri))


PHASE_STEPS = {"plan": _plan, "propose": _propose, "annotate": _annotate, "await_humans": _await,
               "consolidate": _consolidate, "retrain": _retrain, "evaluate": _evaluate, "promote": _promote}
STEPS = ("start", *PHASE_STEPS, "report")


def run_step(config_uri: str, step: str, phase: int | None = None) -> dict:
    """One step by name (what `sam3-engine campaign step` and an Airflow task run)."""
    if step == "start":
        return start(config_uri)
    if step == "report":
        return report(config_uri)
    if step == "run":
        return run_campaign(config_uri)
    if step not in PHASE_STEPS:
        raise ValueError(f"unknown step {step!r} (one of {', '.join((*STEPS, 'run'))})")
    if phase is None:
        raise ValueError(f"step {step!r} needs a phase")
    return PHASE_STEPS[step](open_campaign(config_uri), phase)


def run_campaign(config_uri: str | CampaignConfig, progress=None, max_waits: int = 50) -> dict:
    """Every phase, every step, in order; then the report. Resumes wherever a previous run stopped."""
    c = open_campaign(config_uri, progress)
    out = {"campaign": c.cfg.name, "start": _start(c), "phases": {}}
    for p in c.cfg.phases:
        k = p.index
        steps = {"plan": _plan(c, k), "propose": _propose(c, k), "annotate": _annotate(c, k)}
        for _ in range(max_waits):
            steps["await_humans"] = _await(c, k)
            if steps["await_humans"]["done"]:
                break
        else:
            raise RuntimeError(f"phase {k}: humans still have {steps['await_humans']['pending']} task(s) pending; "
                               "rerun `campaign resume` when they are done")
        for name in ("consolidate", "retrain", "evaluate", "promote"):
            steps[name] = PHASE_STEPS[name](c, k)
        out["phases"][k] = steps
    out["report"] = _report(c)
    c.state.upsert_campaign(c.cfg.name, status="done")
    return out
