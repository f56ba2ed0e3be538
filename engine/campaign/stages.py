"""Stage functions: plain functions over one work unit (a batch of media), no Ray imports.

Each `*_unit` function reads its inputs from the unit's committed parts, writes its own part, then the
unit's marker (`Layout.unit_marker`), and returns a small summary dict; the executors (inline or Ray
Data) only decide where the function runs. The heavy objects (proposer, model, verifiers) live on a
`StageContext` and are built lazily, once per process or Ray actor.

- plan: media -> NP proposals (world captioner stand-in or an ontology proposer) [+ mined hard negatives]
- propose: the model's masks and per-pair outputs (`verifiers.context.PairContext`, kept for the verifiers)
- verify: MV per proposed mask, then EV per pair over the masks MV accepted (needs the routing bands)
- route: `engine.campaign.routing.route_pair`, human tasks for what AI did not settle, the annotate part
- consolidate: AI finals + human outcomes -> final pairs (with lineage) and the decision log
"""

from __future__ import annotations

import base64
import json
import time
from functools import cached_property

import numpy as np

from engine.campaign import routing
from engine.campaign.config import CampaignConfig
from engine.campaign.layout import Layout
from engine.campaign.sources import MediaItem, materialise
from storage.records import Instance, Lineage, Pair, pair_id


class StageContext:
    """What stage functions of one campaign phase share (heavy parts built lazily)."""

    def __init__(self, cfg: CampaignConfig, phase: int, model_ref: str | None = None,
                 verifier_dir: str | None = None, thresholds: dict | None = None):
        self.cfg, self.phase = cfg, phase
        self.settings = cfg.phase(phase)
        self.layout = Layout(cfg)
        self.model_ref, self.verifier_dir, self.thresholds = model_ref, verifier_dir, thresholds or {}

    # ---- heavy parts ---------------------------------------------------------------------------
    @cached_property
    def loaded(self):
        from engine.campaign.models import load_model_ref

        return load_model_ref(self.cfg, self.model_ref)

    @cached_property
    def proposer(self):
        if self.cfg.proposer.get("kind", "world") == "world":
            return None
        from model.predictor import Predictor
        from ontology.proposers import build_proposer

        needs_model = self.cfg.proposer.get("kind") == "model"
        return build_proposer(self.cfg.proposer, predictor=Predictor(self.loaded) if needs_model else None)

    @cached_property
    def verifier_set(self):
        if not self.verifier_dir:
            return None
        from engine.campaign.verifier_ops import load_phase_verifiers

        return load_phase_verifiers(self.cfg, self.verifier_dir)

    @cached_property
    def policy(self) -> routing.Policy:
        mode = self.settings.mode
        if mode != "human" and self.verifier_set is None:
            mode = "human" if mode == "hybrid" else mode
        def band(task):
            t = self.thresholds.get(task) or {}
            return routing.Band(t.get("accept_at"), t.get("reject_at"))
        return routing.Policy(mode, band("mv"), band("ev"), self.cfg.verifiers.spot_check_rate, self.cfg.seed)


# ---- plan --------------------------------------------------------------------------------------
def world_phrases(cfg: CampaignConfig, item: MediaItem) -> tuple[list[str], list[str]]:
    """(positive-looking, negative) phrases the captioner stand-in proposes for a world image."""
    from engine.world import render_scene
    from engine.world.samples import scene_pairs

    p = cfg.proposer
    scene = render_scene(cfg.source.seed, item.index, item.domain, cfg.source.image_size)
    pairs = scene_pairs(scene, p["negatives"], max_positives=p["positives"], hard_fraction=p["hard_fraction"])
    return [x.phrase for x in pairs if x.label == "positive"], [x.phrase for x in pairs if x.label != "positive"]


def mine_hard_negatives(ctx: StageContext, item: MediaItem, image: bytes, positives: list[str]) -> list[str]:
    from engine.world.vocab import world_graph
    from model.predictor import Predictor
    from ontology.hard_negatives import HardNegativeMiner

    if not positives:
        return []
    miner = ctx.__dict__.get("_miner")
    if miner is None:
        miner = ctx.__dict__["_miner"] = HardNegativeMiner(
            world_graph(), {"per_image": 4, "keep_non_overlapping": True, "max_candidates": 24},
            predictor=Predictor(ctx.loaded, batch_size=ctx.cfg.model.batch_size))
    return miner.mine(item.media_id, image, {p: [] for p in positives}, domain=item.domain).hard_negatives


def plan_unit(ctx: StageContext, unit: str, items: list[MediaItem]) -> dict:
    t0 = time.perf_counter()
    rows, quarantined = [], []
    for item in items:
        try:
            uri, w, h, data = materialise(ctx.cfg, ctx.layout, item)
        except Exception as err:  # noqa: BLE001 - one bad image never stops a campaign
            quarantined.append({"media_id": item.media_id, "reason": str(err)[:300]})
            continue
        if ctx.proposer is None:
            pos, neg = world_phrases(ctx.cfg, item)
            origins = {**{p: "caption" for p in pos}, **{p: "negative" for p in neg}}
            if ctx.settings.hard_negatives:
                for hn in mine_hard_negatives(ctx, item, data, pos):
                    origins.setdefault(hn, "hard_negative")
        else:
            from ontology.proposers import ProposalRequest

            (batch,) = ctx.proposer.propose([ProposalRequest(item.media_id, data, item.domain)])
            origins = {p.phrase: p.source for p in batch.proposals}
        for phrase, origin in origins.items():
            rows.append({"pair_id": pair_id(item.media_id, phrase), "media_id": item.media_id, "phrase": phrase,
                         "uri": uri, "width": w, "height": h, "domain": item.domain, "origin": origin})
    rows.sort(key=lambda r: (r["media_id"], r["pair_id"]))
    ctx.layout.write_records(ctx.layout.part(ctx.phase, "plan", unit), rows)
    info = {"pairs": len(rows), "media": len(items) - len(quarantined), "quarantined": quarantined,
            "seconds": round(time.perf_counter() - t0, 3)}
    ctx.layout.mark(ctx.layout.unit_marker(ctx.phase, "plan", unit), info)
    return {"unit": unit, **info}


def by_media(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["media_id"], []).append(r)
    return out


# ---- propose -----------------------------------------------------------------------------------
def context_to_dict(c) -> dict:
    sem = None
    if c.semantic_map is not None:
        arr = np.asarray(c.semantic_map, dtype=np.float16)
        sem = {"shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode()}
    return {"height": c.height, "width": c.width, "presence": float(c.presence),
            "scores": [round(float(s), 6) for s in c.scores], "semantic": c.semantic, "semantic_map": sem,
            "stability": None if c.stability is None else [round(float(s), 6) for s in c.stability],
            "instances": [{"score": i.score, "query": i.query, "bbox": i.bbox, "area": i.area,
                           "semantic_agreement": i.semantic_agreement, "rle": i.rle,
                           "stability": None if i.stability != i.stability else i.stability}
                          for i in c.instances], "model_version": c.model_version}


def context_from_dict(d: dict):
    from verifiers.context import PairContext, PredInstance

    sem = d.get("semantic_map")
    sem_map = None
    if sem:
        sem_map = np.frombuffer(base64.b64decode(sem["b64"]), dtype=np.float16).reshape(sem["shape"]).astype(np.float32)
    insts = [PredInstance(i["score"], i["query"], i["bbox"], i["area"], i["semantic_agreement"], i["rle"],
                          float("nan") if i["stability"] is None else i["stability"]) for i in d["instances"]]
    return PairContext(d["height"], d["width"], d["presence"], np.asarray(d["scores"], np.float32), insts,
                       d["semantic"], sem_map, None if d["stability"] is None else np.asarray(d["stability"],
                                                                                              np.float32),
                       d.get("model_version"))


def propose_unit(ctx: StageContext, unit: str, provider=None) -> dict:
    """Predict every planned pair of the unit (one vision pass per image) and keep its outputs."""
    from verifiers.context import ContextProvider

    t0 = time.perf_counter()
    plan = ctx.layout.read_stage(ctx.phase, "plan", unit)
    groups = by_media(plan)
    provider = provider or ContextProvider(ctx.loaded, score_threshold=ctx.cfg.model.mask_score,
                                           batch_size=ctx.cfg.model.batch_size, model_version=ctx.model_ref)
    store = ctx.layout.store
    items = [(m, store.read_bytes(rows[0]["uri"]), [r["phrase"] for r in rows]) for m, rows in groups.items()]
    contexts = provider.contexts(items) if items else {}
    out = []
    for r in plan:
        c = contexts.get((r["media_id"], r["phrase"]))
        out.append({**{k: r[k] for k in ("pair_id", "media_id", "phrase", "uri", "domain")},
                    "model_version": ctx.model_ref,
                    "context": None if c is None else context_to_dict(c),
                    "error": provider.errors.get(r["media_id"]) if c is None else None})
    ctx.layout.write_records(ctx.layout.part(ctx.phase, "propose", unit), out)
    info = {"pairs": len(out), "masks": sum(len(o["context"]["instances"]) for o in out if o["context"]),
            "model_version": ctx.model_ref, "seconds": round(time.perf_counter() - t0, 3)}
    ctx.layout.mark(ctx.layout.unit_marker(ctx.phase, "propose", unit), info)
    return {"unit": unit, **info}


def proposal_masks(ctx: StageContext, row: dict) -> list[Instance]:
    c = row.get("context")
    if not c:
        return []
    insts = sorted(c["instances"], key=lambda i: -i["score"])[: ctx.cfg.model.max_masks]
    return [Instance(rle=i["rle"], bbox=i["bbox"], source="model", score=round(float(i["score"]), 6))
            for i in insts if i["score"] >= ctx.cfg.model.mask_score]


# ---- verify + route (annotate) -----------------------------------------------------------------
def verify_unit(ctx: StageContext, unit: str) -> dict:
    """MV and EV verdicts of the unit's pairs: {pair id: {"mv": [verdict], "ev": verdict}} (JSON-able)."""
    from verifiers.base import EVRequest, MVRequest
    from verifiers.context import StaticContexts

    t0 = time.perf_counter()
    rows = ctx.layout.read_stage(ctx.phase, "propose", unit)
    if ctx.policy.mode == "human" or ctx.verifier_set is None:
        return {"unit": unit, "verdicts": {}, "seconds": 0.0}
    contexts = {(r["media_id"], r["phrase"]): context_from_dict(r["context"]) for r in rows if r["context"]}
    uris = {r["media_id"]: r["uri"] for r in rows}
    static = StaticContexts(contexts)
    media = lambda m: ctx.layout.store.read_bytes(uris[m])
    mv_v = ctx.verifier_set.verifier("mv", static, media) if "mv" in ctx.verifier_set.tasks else None
    ev_v = ctx.verifier_set.verifier("ev", static, media) if "ev" in ctx.verifier_set.tasks else None
    masks = {r["pair_id"]: proposal_masks(ctx, r) for r in rows}
    mv_reqs = [MVRequest(r["media_id"], r["phrase"], m, None, contexts.get((r["media_id"], r["phrase"])),
                         request_id=f"{r['pair_id']}:{i}") for r in rows for i, m in enumerate(masks[r["pair_id"]])]
    mv_out = mv_v.verify(mv_reqs) if (mv_v and mv_reqs) else []
    per_pair: dict[str, list] = {r["pair_id"]: [] for r in rows}
    for req, v in zip(mv_reqs, mv_out):
        per_pair[req.request_id.split(":")[0]].append(v)
    ev_reqs = []
    for r in rows:
        pid = r["pair_id"]
        vs = per_pair[pid] if mv_v else [None] * len(masks[pid])
        pre = routing.route_pair(ctx.policy, pid, len(masks[pid]), vs, None)
        kept = [masks[pid][i] for i in pre.accepted]
        ev_reqs.append(EVRequest(r["media_id"], r["phrase"], kept, None,
                                 contexts.get((r["media_id"], r["phrase"])), request_id=pid))
    ev_out = ev_v.verify(ev_reqs) if (ev_v and ev_reqs) else [None] * len(ev_reqs)
    verdicts = {}
    for r, ev in zip(rows, ev_out):
        pid = r["pair_id"]
        verdicts[pid] = {"mv": [v.to_dict() for v in per_pair[pid]] if mv_v else None,
                         "ev": ev.to_dict() if ev is not None else None}
    return {"unit": unit, "verdicts": verdicts, "seconds": round(time.perf_counter() - t0, 3)}


def _verdict(d: dict | None, task: str):
    from verifiers.base import Verdict

    if d is None:
        return None
    return Verdict(task, d["probs"], d["verifier"], d.get("request_id"), d.get("presence"), d.get("error"))


def human_tasks(ctx: StageContext, desk, masks: list[Instance], row: dict,
                needed: list[tuple[str, int | None, list[int]]], assisted: bool) -> list:
    """HumanTasks for what `routing.human_step` says a pair needs (AI-assisted once verifiers ran)."""
    from engine.humans.base import HumanTask

    out = []
    for kind, idx, keep in needed:
        tid = desk.task_id(ctx.phase, row["pair_id"], kind, idx)
        task = HumanTask(task_id=tid, kind=kind, media_id=row["media_id"], phrase=row["phrase"],
                         media_uri=row.get("uri"), masks=[masks[i] for i in keep], raters=ctx.cfg.humans.raters,
                         ai_assisted=assisted and kind != "correction")
        out.append((task, row["pair_id"], kind if idx is None else f"mv:{idx}"))
    return out


def route_unit(ctx: StageContext, unit: str, verdicts: dict, desk, verify_seconds: float = 0.0) -> dict:
    """Route every pair of the unit, queue first-round human tasks, write the annotate part."""
    t0 = time.perf_counter()
    rows = ctx.layout.read_stage(ctx.phase, "propose", unit)
    out, tasks, counts = [], [], {}
    for r in rows:
        masks = proposal_masks(ctx, r)
        v = verdicts.get(r["pair_id"]) or {}
        mv = [_verdict(d, "mv") for d in v["mv"]] if v.get("mv") is not None else None
        route = routing.route_pair(ctx.policy, r["pair_id"], len(masks), mv, _verdict(v.get("ev"), "ev"))
        rd = route.to_dict()
        key = route.label if route.outcome == "final" else ("spot_check" if route.spot_check else "human")
        counts[key] = counts.get(key, 0) + 1
        if route.outcome == "human":
            step = routing.human_step(rd, {})
            tasks.extend(human_tasks(ctx, desk, masks, r, step.needed, ctx.policy.mode != "human"))
        out.append({**{k: r[k] for k in ("pair_id", "media_id", "phrase", "uri", "domain", "model_version")},
                    "masks": [m.model_dump() for m in masks], "route": rd,
                    "verifiers": sorted({d["verifier"] for d in rd["decisions"]})})
    ctx.layout.write_records(ctx.layout.part(ctx.phase, "annotate", unit), out)
    new = desk.enqueue(ctx.phase, tasks) if tasks else 0
    info = {"pairs": len(out), "routes": counts, "human_tasks": len(tasks), "new_tasks": new,
            "ai_calls": {"mv": sum(len(v.get("mv") or []) for v in verdicts.values()),
                         "ev": sum(v.get("ev") is not None for v in verdicts.values())},
            "seconds": round(time.perf_counter() - t0 + verify_seconds, 3)}
    ctx.layout.mark(ctx.layout.unit_marker(ctx.phase, "annotate", unit), info)
    return {"unit": unit, **info}


# ---- consolidate -------------------------------------------------------------------------------
def final_pair(ctx: StageContext, row: dict, results: dict) -> tuple[Pair | None, dict]:
    """The pair's final label from its route and human results (None while humans are pending)."""
    route = row["route"]
    masks = [Instance.model_validate(m) for m in row["masks"]]
    versions = {v.rsplit("/", 1)[-1]: v for v in row.get("verifiers", [])}
    lineage = {"model_version": row["model_version"], "verifier_versions": versions, "campaign": ctx.cfg.name,
               "phase": ctx.phase}
    if route["outcome"] == "final":
        keep = [masks[i] for i in route["accepted"]] if route["label"] == "positive" else []
        pair = Pair(media_id=row["media_id"], phrase=row["phrase"], label=route["label"], reason=route["reason"],
                    is_instance_exhaustive=route["exhaustive"], instances=keep,
                    lineage=Lineage(source="ai", **lineage))
        return pair, {"source": "ai"}
    outcome = routing.human_step(route, results)
    if not outcome.final:
        return None, {"pending": [n[0] for n in outcome.needed]}
    if outcome.corrected is not None:
        insts = [Instance.model_validate(i) for i in outcome.corrected]
    else:
        insts = [masks[i] for i in outcome.masks] if outcome.label == "positive" else []
    pair = Pair(media_id=row["media_id"], phrase=row["phrase"], label=outcome.label, reason=outcome.reason,
                instances=insts, lineage=Lineage(source=outcome.source, **lineage))
    return pair, {"source": outcome.source, "spot_check": route.get("spot_check", False),
                  "ai_label": route.get("ai_label")}


def consolidate_unit(ctx: StageContext, unit: str, results: dict) -> dict:
    """Final pairs (PAIRS part `final`) and the unit's decision log (part `decisions`)."""
    from storage.tables import write_pairs

    rows = ctx.layout.read_stage(ctx.phase, "annotate", unit)
    pairs, decisions, pending = [], [], 0
    for row in rows:
        pair, info = final_pair(ctx, row, results.get(row["pair_id"], {}))
        if pair is None:
            pending += 1
            continue
        pairs.append(pair)
        human = results.get(row["pair_id"], {})
        decisions.append({"pair_id": row["pair_id"], "media_id": row["media_id"], "phrase": row["phrase"],
                          "label": pair.label, "source": pair.lineage.source, "domain": row["domain"],
                          "ai": row["route"]["decisions"], "spot_check": info.get("spot_check", False),
                          "ai_label": info.get("ai_label") or (row["route"]["label"]
                                                               if row["route"]["outcome"] == "final" else None),
                          "n_masks": len(row["masks"]), "n_instances": len(pair.instances),
                          "human": {k: v for k, v in human.items()}})
    if pending:
        return {"unit": unit, "pending": pending}
    write_pairs(ctx.layout.part(ctx.phase, "final", unit), pairs, ctx.layout.store)
    ctx.layout.write_records(ctx.layout.part(ctx.phase, "decisions", unit), decisions)
    info = {"pairs": len(pairs), "labels": {lab: sum(p.label == lab for p in pairs)
                                            for lab in ("positive", "negative", "dropped")}}
    ctx.layout.mark(ctx.layout.unit_marker(ctx.phase, "consolidate", unit), info)
    return {"unit": unit, **info}


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
