"""The campaign report: `reports/report.json` with every figure and `reports/index.html` with PNG plots.

Figures per phase: pairs and their labels (% negatives, masks per positive pair), routes, human
seconds by task kind and per accepted pair, AI calls, throughput multiplier against human-only
(overall, positives, negatives), cost, verifier version / calibration (accuracy, coverage) and AI
coverage + spot-check agreement, label quality against exact GT (shapes world), retrain / gold
evaluation / promotion; campaign-wide: gold cgF1 of every model version per domain, and `checks`,
the demo's targets (issue 7 item 10) each with the measured value and whether it is met. Figures a
source cannot have (no ground truth, no gold set) are listed under `needs_ground_truth` with why.
"""

from __future__ import annotations

import html
import io
import json
from itertools import pairwise

from engine.campaign.accounting import costs, phase_accounts
from engine.campaign.quality import label_quality
from engine.campaign.sources import phase_units


def _phase(c, p) -> dict:
    layout, k = c.layout, p.index
    units = list(phase_units(c.cfg, k, layout.store))
    cons = layout.done(layout.step_marker(k, "consolidate"))
    out = {"mode": p.mode, "domain": p.domain, "images": p.images, "units": len(units)}
    if cons is None:
        return {**out, "status": "not consolidated yet"}
    acc = phase_accounts(layout, k, units)
    routes: dict[str, int] = {}
    masks = 0
    for u in units:
        m = layout.unit_done(k, "annotate", u) or {}
        for r, n in (m.get("routes") or {}).items():
            routes[r] = routes.get(r, 0) + n
        masks += (layout.unit_done(k, "propose", u) or {}).get("masks", 0)
    ver = layout.done(layout.step_marker(k, "verifiers")) or {}
    positives = cons["labels"]["positive"]
    n_inst = sum(_instances(layout, k, u) for u in units)
    mask_sources = cons.get("mask_sources") or {}
    n_masks = sum(mask_sources.values())
    return {**out, "status": "consolidated", "pairs": cons["pairs"], "labels": cons["labels"],
            "sources": cons["sources"], "export": cons["export"], "shards": cons["shards"],
            "negatives_pct": round(100 * acc["negatives_share"], 1) if acc["negatives_share"] is not None else None,
            "masks_per_positive_pair": round(n_inst / positives, 2) if positives else None,
            "mask_sources": mask_sources,
            "model_mask_share": round(mask_sources.get("model", 0) / n_masks, 4) if n_masks else None,
            "proposed_masks": masks, "routes": routes, "accounting": acc, "cost": costs(acc, c.cfg.costs),
            "verifiers": {"version": ver.get("version"), "trained_on_decisions": ver.get("decisions"),
                          "thresholds": ver.get("thresholds"), "calibration": ver.get("calibration")} if ver else None,
            "label_quality": label_quality(c.cfg, layout, k, units),
            "retrain": layout.done(layout.step_marker(k, "retrain")),
            "evaluate": layout.done(layout.step_marker(k, "evaluate")),
            "promote": layout.done(layout.step_marker(k, "promote"))}


def _instances(layout, k, u) -> int:
    return sum(r["n_instances"] for r in layout.read_stage(k, "decisions", u) if r["label"] == "positive")


def gold_history(c) -> dict:
    """{model ref: {domain: metrics}} for the initial model and every candidate, in order."""
    start = c.layout.done(c.layout.path("start.json")) or {}
    out = {}
    if start.get("baseline"):
        out[start["initial_model"]] = start["baseline"]
    for p in c.cfg.phases:
        ev = c.layout.done(c.layout.step_marker(p.index, "evaluate")) or {}
        for ref, m in (ev.get("gold") or {}).items():
            out.setdefault(ref, m)
    return out


def checks(phases: dict, gold: dict, promoted_chain: list[str]) -> dict:
    out = {}
    done = {k: v for k, v in phases.items() if v.get("status") == "consolidated"}
    if promoted_chain and gold:
        means = [sum(m["cgF1"] for m in gold[r].values()) / len(gold[r]) for r in promoted_chain if r in gold]
        out["gold_cgF1_never_regresses"] = {"values": [round(x, 2) for x in means],
                                            "met": all(b >= a - 1e-9 for a, b in pairwise(means))}
    for k, v in done.items():  # the model retrained on a phase's labels should do better on its domain
        ev = v.get("evaluate") or {}
        if "gold" in ev and v["domain"] in ev["gold"][ev["baseline"]]:
            before = ev["gold"][ev["baseline"]][v["domain"]]["cgF1"]
            after = ev["gold"][ev["candidate"]][v["domain"]]["cgF1"]
            out[f"phase{k}_gold_cgF1_rises_on_{v['domain']}"] = {"before": round(before, 2), "after": round(after, 2),
                                                                 "met": after > before}
    first = done.get(1)
    if first and first["accounting"]["human_seconds_per_accepted_pair"]:
        base = first["accounting"]["human_seconds_per_accepted_pair"]
        for k, v in done.items():
            if k == 1:
                continue
            val = v["accounting"]["human_seconds_per_accepted_pair"]
            out[f"phase{k}_human_s_per_accepted_pair_at_most_half_of_phase1"] = {
                "phase1": base, "value": val, "met": val is not None and val <= base / 2}
            if k >= 3:  # by the third phase the model and verifiers should carry two thirds of the work
                out[f"phase{k}_human_s_per_accepted_pair_at_most_third_of_phase1"] = {
                    "phase1": base, "value": val, "met": val is not None and val <= base / 3}
    for k, v in done.items():  # after the first phase, most accepted masks should be the model's
        if k > 1 and v.get("model_mask_share") is not None:
            out[f"phase{k}_model_proposals_at_least_half_of_accepted_masks"] = {
                "value": v["model_mask_share"], "mask_sources": v["mask_sources"], "met": v["model_mask_share"] >= 0.5}
    if first and first["accounting"]["human_seconds_per_accepted_pair"]:
        q1 = first["label_quality"]
        if "cgF1" in q1:
            for k, v in done.items():
                q = v["label_quality"]
                if k == 1 or "cgF1" not in q:
                    continue
                out[f"phase{k}_label_cgF1_within_2_points_of_phase1"] = {
                    "phase1": q1["cgF1"], "value": q["cgF1"], "met": q["cgF1"] >= q1["cgF1"] - 2}
                out[f"phase{k}_label_IL_MCC_at_least_0.95"] = {"value": q["IL_MCC"], "met": q["IL_MCC"] >= 0.95}
    return out


def build_report(c) -> dict:
    phases = {p.index: _phase(c, p) for p in c.cfg.phases}
    gold = gold_history(c)
    start = c.layout.done(c.layout.path("start.json")) or {}
    chain = [start.get("initial_model")] + [v["promote"]["candidate"] for v in phases.values()
                                            if (v.get("promote") or {}).get("promoted")]
    chain = [r for r in chain if r]
    needs_gt = {}
    if c.cfg.source.kind != "shapes":
        needs_gt["label_quality"] = "needs exact ground truth (shapes world); a folder/S3/WebDataset source has none"
    if not gold:
        needs_gt["gold_cgF1"] = "needs a gold set: shapes world, or retrain.gold (domain -> SA-Co JSON)"
        needs_gt["promotion_gate"] = "without gold cgF1 no retrained model is promoted"
    done = [v for v in phases.values() if v.get("status") == "consolidated"]
    totals = {"pairs": sum(v["pairs"] for v in done),
              "labels": {lab: sum(v["labels"][lab] for v in done) for lab in ("positive", "negative", "dropped")},
              "human_seconds": round(sum(v["accounting"]["total"]["human_seconds"] for v in done), 1),
              "human_only_seconds": round(sum(v["accounting"]["total"]["human_only_seconds"] for v in done), 1)}
    acc = totals["labels"]["positive"] + totals["labels"]["negative"]
    totals["negatives_pct"] = round(100 * totals["labels"]["negative"] / acc, 1) if acc else None
    return {"campaign": c.cfg.name, "source": c.cfg.source.kind, "executor": c.cfg.executor.kind,
            "config": c.layout.store.uri(c.layout.path("campaign.yaml")), "initial_model": start.get("initial_model"),
            "promoted_models": chain, "totals": totals, "phases": phases, "gold_cgF1_by_model": gold,
            "checks": checks(phases, gold, chain), "needs_ground_truth": needs_gt}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plots(report: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    done = {k: v for k, v in report["phases"].items() if v.get("status") == "consolidated"}
    names = [f"phase {k}\n{v['mode']}" for k, v in done.items()]
    if done:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(names, [v["accounting"]["human_seconds_per_accepted_pair"] or 0 for v in done.values()], label="engine")
        ax.plot(names, [v["accounting"]["total"]["human_only_seconds"] / max(1, v["accounting"]["accepted_pairs"])
                        for v in done.values()], "k--o", label="human-only (same pairs)")
        ax.set_ylabel("human s / accepted pair"); ax.legend(); ax.set_title("human time per accepted pair")
        out["human_seconds.png"] = _png(fig)
        fig, ax = plt.subplots(figsize=(5, 3))
        bottom = [0] * len(done)
        for lab in ("positive", "negative", "dropped"):
            vals = [v["labels"][lab] for v in done.values()]
            ax.bar(names, vals, bottom=bottom, label=lab)
            bottom = [a + b for a, b in zip(bottom, vals)]
        ax.set_ylabel("pairs"); ax.legend(); ax.set_title("pairs by label")
        out["labels.png"] = _png(fig)
        fig, ax = plt.subplots(figsize=(5, 3))
        for i, t in enumerate(("positive", "negative")):
            vals = [v["accounting"]["by_type"][t]["multiplier"] or 0 for v in done.values()]
            ax.bar([j + 0.4 * i for j in range(len(done))], vals, width=0.4, label=t)
        ax.set_xticks([j + 0.2 for j in range(len(done))], names)
        ax.axhline(1, color="k", lw=0.5); ax.set_ylabel("x vs human-only"); ax.legend()
        ax.set_title("throughput multiplier (0 = no human time)")
        out["multiplier.png"] = _png(fig)
    gold = report["gold_cgF1_by_model"]
    if gold:
        fig, ax = plt.subplots(figsize=(5, 3))
        refs = list(gold)
        for domain in sorted({d for m in gold.values() for d in m}):
            ax.plot([r.split(":")[-1] for r in refs], [gold[r].get(domain, {}).get("cgF1", 0) for r in refs], "o-",
                    label=domain)
        ax.set_ylabel("gold cgF1"); ax.legend(); ax.set_title("gold cgF1 per model version")
        out["gold_cgf1.png"] = _png(fig)
    return out


def _table(d: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(json.dumps(v, default=str))[:600]}"
                   f"</code></td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def render_html(report: dict, images: list[str]) -> str:
    keys = ("pairs", "labels", "negatives_pct", "masks_per_positive_pair", "routes", "label_quality", "cost",
            "verifiers", "retrain", "promote")
    parts = [f"<h1>campaign {html.escape(report['campaign'])}</h1>",
             (f"<p>source <b>{report['source']}</b>, executor <b>{report['executor']}</b>, "
              f"config <code>{html.escape(report['config'])}</code></p>"),
             "<h2>checks</h2>", _table(report["checks"]) if report["checks"] else "<p>none</p>",
             "<h2>totals</h2>", _table(report["totals"])]
    if report["needs_ground_truth"]:
        parts += ["<h2>figures that need ground truth</h2>", _table(report["needs_ground_truth"])]
    parts += [f'<img src="{name}" alt="{name}">' for name in images]
    for k, v in report["phases"].items():
        parts.append(f"<h2>phase {k} ({html.escape(v['mode'])}, {html.escape(v['domain'])})</h2>")
        if v.get("status") != "consolidated":
            parts.append(f"<p>{html.escape(v.get('status', ''))}</p>")
            continue
        acc = v["accounting"]
        parts.append(_table({**{key: v.get(key) for key in keys},
                             "human_seconds_per_accepted_pair": acc["human_seconds_per_accepted_pair"],
                             "human_seconds_by_task": acc["human_seconds_by_task"],
                             "multiplier (all / positive / negative)": [acc["total"]["multiplier"],
                                                                         acc["by_type"]["positive"]["multiplier"],
                                                                         acc["by_type"]["negative"]["multiplier"]],
                             "ai_coverage": acc["ai_coverage"], "spot_checks": acc["spot_checks"]}))
    parts += ["<h2>gold cgF1 by model version</h2>", _table(report["gold_cgF1_by_model"])]
    head = ("<!doctype html><html><head><meta charset='utf-8'><title>sam3-engine campaign report</title><style>"
            "body{font-family:sans-serif;max-width:70em;margin:2em auto}th{text-align:left;padding-right:1em;"
            "vertical-align:top}img{margin:.5em}</style></head><body>")
    return head + "".join(parts) + "</body></html>"


def write_report(c) -> dict:
    report = build_report(c)
    layout = c.layout
    images = plots(report)
    for name, data in images.items():
        layout.store.write_bytes(f"{layout.reports}/{name}", data)
    json_uri = layout.store.write_bytes(f"{layout.reports}/report.json",
                                        json.dumps(report, indent=2, sort_keys=True, default=str).encode())
    html_uri = layout.store.write_bytes(f"{layout.reports}/index.html", render_html(report, list(images)).encode())
    return {"json": json_uri, "html": html_uri, "checks": report["checks"], "totals": report["totals"]}
