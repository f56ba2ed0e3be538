"""Accounting: human seconds, AI calls, throughput multiplier and cost, per phase and pair type.

Read from the committed decision logs (`phase-<k>/decisions/part-*.parquet`, one record per final
pair with the AI verdicts and every human result with its seconds) and the unit markers (model and
verifier compute seconds), one unit at a time (nothing is held in memory beyond the totals).

- Human seconds by task kind (mv / ev / correction) and by final pair type (positive / negative / dropped).
- AI calls: predictor pair predictions, MV verdicts (one per mask), EV verdicts (one per pair).
- Throughput multiplier against a human-only run over the same pairs: the human-only cost of a pair is
  what phase 1's routing would spend with the time model's expected seconds (`engine.humans.timing`):
  MV of every proposed mask + one EV + (for a positive) a correction of its instances; the multiplier
  is that sum over the actual human seconds (None when no human time was spent: SYN).
- Cost: human seconds x `costs.human_hour_usd` + measured compute seconds x the CPU or GPU hourly rate.
"""

from __future__ import annotations

from collections import defaultdict

from engine.humans.timing import TimeModel

TYPES = ("positive", "negative", "dropped")


def human_only_seconds(n_masks: int, label: str, n_instances: int, tm: TimeModel) -> float:
    secs = n_masks * tm.expected("mv") + tm.expected("ev")
    if label == "positive":
        secs += tm.expected("correction", n_instances=n_instances)
    return secs


def _blank() -> dict:
    return {"pairs": 0, "human_seconds": 0.0, "human_tasks": 0, "human_only_seconds": 0.0,
            "ai_mv_calls": 0, "ai_ev_calls": 0, "predictor_calls": 0, "ai_decided": 0}


def phase_accounts(layout, phase: int, units, tm: TimeModel | None = None) -> dict:
    """The accounting of one phase (see module docstring)."""
    tm = tm or TimeModel()
    by_type = {t: _blank() for t in TYPES}
    by_kind: dict[str, float] = defaultdict(float)
    tasks_by_kind: dict[str, int] = defaultdict(int)
    spot = {"checked": 0, "agreed": 0}
    for u in units:
        for r in layout.read_stage(phase, "decisions", u):
            t = by_type[r["label"]]
            t["pairs"] += 1
            t["predictor_calls"] += 1
            t["ai_mv_calls"] += sum(d["kind"] == "mv" for d in r["ai"])
            t["ai_ev_calls"] += sum(d["kind"] == "ev" for d in r["ai"])
            t["ai_decided"] += r["source"] == "ai"
            for key, results in (r.get("human") or {}).items():
                if results == "cancelled":
                    continue
                kind = key.split(":")[0]
                secs = sum(x["seconds"] for x in results)
                by_kind[kind] += secs
                tasks_by_kind[kind] += 1
                t["human_seconds"] += secs
                t["human_tasks"] += 1
            t["human_only_seconds"] += human_only_seconds(r["n_masks"], r["label"], r["n_instances"], tm)
            if r.get("spot_check"):
                spot["checked"] += 1
                spot["agreed"] += r["label"] == r.get("ai_label")
    compute = {"propose": 0.0, "annotate": 0.0, "plan": 0.0, "consolidate": 0.0}
    for u in units:
        for stage in compute:
            compute[stage] += (layout.unit_done(phase, stage, u) or {}).get("seconds", 0.0)
    total = _blank()
    for t in by_type.values():
        for k in total:
            total[k] += t[k]
    for t in (*by_type.values(), total):
        t["multiplier"] = round(t["human_only_seconds"] / t["human_seconds"], 3) if t["human_seconds"] > 0 else None
        t["human_seconds"] = round(t["human_seconds"], 1)
        t["human_only_seconds"] = round(t["human_only_seconds"], 1)
    accepted = by_type["positive"]["pairs"] + by_type["negative"]["pairs"]
    return {"by_type": by_type, "total": total,
            "human_seconds_by_task": {k: round(v, 1) for k, v in sorted(by_kind.items())},
            "human_tasks_by_kind": dict(sorted(tasks_by_kind.items())),
            "accepted_pairs": accepted,
            "human_seconds_per_accepted_pair": round(total["human_seconds"] / accepted, 2) if accepted else None,
            "negatives_share": round(by_type["negative"]["pairs"] / accepted, 4) if accepted else None,
            "ai_coverage": round(total["ai_decided"] / total["pairs"], 4) if total["pairs"] else None,
            "spot_checks": {**spot, "agreement": round(spot["agreed"] / spot["checked"], 4) if spot["checked"] else None},
            "compute_seconds": {k: round(v, 2) for k, v in compute.items()}}


def costs(accounts: dict, cost_settings) -> dict:
    human_h = accounts["total"]["human_seconds"] / 3600
    compute_h = sum(accounts["compute_seconds"].values()) / 3600
    rate = cost_settings.gpu_hour_usd if cost_settings.compute_device == "gpu" else cost_settings.cpu_hour_usd
    human_usd = human_h * cost_settings.human_hour_usd
    compute_usd = compute_h * rate
    accepted = accounts["accepted_pairs"]
    return {"human_hours": round(human_h, 4), "human_usd": round(human_usd, 4),
            "compute_hours": round(compute_h, 5), "compute_usd": round(compute_usd, 5),
            "compute_device": cost_settings.compute_device,
            "usd_per_accepted_pair": round((human_usd + compute_usd) / accepted, 5) if accepted else None,
            "human_only_usd": round(accounts["total"]["human_only_seconds"] / 3600 * cost_settings.human_hour_usd, 4)}
