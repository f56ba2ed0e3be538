"""The verifiers a phase uses: trained and calibrated on the campaign's human decisions so far.

`phase_verifiers(cfg, phase, desk)` (idempotent: `phase-<k>/verifiers/` + its marker) builds the
`verifiers.decisions.Decision` log of every finished human task of earlier phases, the model outputs
the humans saw (the `propose` parts, as `StaticContexts`, so no model runs again), splits the items by
media into a training part and a calibration slice (`verifiers.calibration_fraction`), trains MV and
EV (`verifiers.training.train_verifiers`) on the first, and picks auto-accept / auto-reject thresholds
on P(accept) at `target_precision` on the second (`verifiers.calibration.choose_thresholds`). The
folder holds the verifier set (its version id is its content hash, so a retrained-identical set has the
same id), `thresholds.json` and `calibration.json` (accuracy and coverage on the slice). Without
human decisions it falls back to `verifiers.init`, and without that to no verifiers (humans decide).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from engine.campaign.config import CampaignConfig
from engine.campaign.layout import Layout
from engine.campaign.models import local_path, registry
from engine.campaign.stages import context_from_dict


def _in_calibration(media_id: str, fraction: float, seed: int) -> bool:
    h = hashlib.sha256(f"{seed}\x1fcal\x1f{media_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2**64 < fraction


def _contexts(cfg: CampaignConfig, phases: list[int]):
    layout = Layout(cfg)
    contexts, uris = {}, {}
    for k in phases:
        prefix = layout.phase_dir(k) + "/propose/"
        for uri in layout.store.list(prefix):
            if not uri.endswith(".parquet"):
                continue
            for r in layout.read_records(uri):
                uris[r["media_id"]] = r["uri"]
                if r["context"]:
                    contexts[(r["media_id"], r["phrase"])] = context_from_dict(r["context"])
    return contexts, uris


def train_from_decisions(cfg: CampaignConfig, decisions, phases: list[int], out_dir: Path) -> dict | None:
    from verifiers.calibration import choose_thresholds, reliability
    from verifiers.context import StaticContexts
    from verifiers.evaluation import run_examples
    from verifiers.examples import ExampleSet, build_examples
    from verifiers.labels import labels_for
    from verifiers.training import train_verifiers

    examples = build_examples(decisions)
    vs = cfg.verifiers
    train, cal = ExampleSet(), ExampleSet()
    for task in ("mv", "ev"):
        for e in examples.of(task):
            (cal if _in_calibration(e.media_id, vs.calibration_fraction, cfg.seed) else train).of(task).append(e)
    if not (train.mv or train.ev):
        return None
    contexts, uris = _contexts(cfg, phases)
    static = StaticContexts(contexts)
    store = Layout(cfg).store
    media = lambda m: store.read_bytes(uris[m]) if m in uris else None
    vset = train_verifiers(train, contexts=static, media=media, embedder=vs.embedder, seed=cfg.seed,
                           tasks=[t for t in ("mv", "ev") if train.of(t)])
    thresholds, report = {}, {"train_examples": {t: len(train.of(t)) for t in ("mv", "ev")},
                              "calibration_examples": {t: len(cal.of(t)) for t in ("mv", "ev")}}
    for task in vset.tasks:
        exs = cal.of(task)
        if not exs:
            continue
        verdicts = run_examples(vset.verifier(task, static, media), exs)
        ok = [(v, e) for v, e in zip(verdicts, exs) if v.probs]
        accept = ("accept", "accept_as_text") if task == "mv" else ("accept",)
        p = np.array([sum(v.p(a) for a in accept) for v, _ in ok])
        y = np.array([e.majority in accept for _, e in ok])
        thr = choose_thresholds(p, y, vs.target_precision, vs.min_support)
        thresholds[task] = thr.to_dict()
        labels = labels_for(task)
        report[task] = {"accuracy": float(np.mean([v.label == e.majority for v, e in ok])) if ok else None,
                        "n": len(ok), "coverage": thr.coverage, "labels": list(labels),
                        "ece": reliability(p, y)["ece"] if len(p) else None,
                        "auto_accept_precision": thr.accept_precision, "auto_reject_precision": thr.reject_precision}
    vset.thresholds = thresholds
    vset.info = {**vset.info, "campaign": cfg.name, "phases": phases}
    vset.save(out_dir)
    cfg_file = out_dir / "config.json"  # no timestamp: the content hash (version id) is reproducible
    saved = json.loads(cfg_file.read_text())
    saved.pop("saved_at", None)
    cfg_file.write_text(json.dumps(saved, indent=2, sort_keys=True, default=str))
    (out_dir / "calibration.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report


def phase_verifiers(cfg: CampaignConfig, phase: int, desk) -> dict:
    """{"dir": where the set is, "version", "thresholds", "calibration"} for a phase (built once).

    "dir" is the local folder `phase-<k>/verifiers/set` under a local root; under an S3 root the set
    is published to the campaign's model registry as `<campaign>-verifiers` (stored and cached like
    models) and "dir" is its registry reference, which `load_phase_verifiers` resolves anywhere.
    """
    layout = Layout(cfg)
    marker = layout.step_marker(phase, "verifiers")
    hit = layout.done(marker)
    if hit is not None:
        return hit
    earlier = [p.index for p in cfg.phases if p.index < phase and p.mode != "syn"]
    decisions = desk.decisions(earlier) if earlier else []
    local = local_path(layout.path(f"phase-{phase}", "verifiers", "set"))
    info: dict = {"dir": None, "version": None, "thresholds": {}, "calibration": {}, "decisions": len(decisions)}
    with tempfile.TemporaryDirectory(prefix="sam3-verifiers-") as tmp:
        built = Path(tmp) / "set"
        report = train_from_decisions(cfg, decisions, earlier, built) if decisions else None
        if report is None and cfg.verifiers.init:
            _replace_dir(Path(cfg.verifiers.init), built, copy=True)
            report = {"source": f"verifiers.init {cfg.verifiers.init}"}
        if report is None:
            return layout.mark(marker, info)
        if parse_scheme(local) == "file":
            _replace_dir(built, Path(local))
            where = local
        else:
            where = _publish_once(cfg, phase, earlier, built)
    vset = load_phase_verifiers(cfg, where)
    info.update(dir=where, version=vset.version, thresholds=vset.thresholds or {}, calibration=report)
    return layout.mark(marker, info)


def _publish_once(cfg: CampaignConfig, phase: int, earlier: list[int], built: Path) -> str:
    """Publish the phase's set to the registry, or find the version a killed earlier run published."""
    from verifiers.store import load_verifiers, publish

    reg, name = registry(cfg), f"{cfg.name}-verifiers"
    for rec in reg.list(name):
        if reg.lineage(rec.ref).get("phase") == phase:
            return rec.ref
    return publish(load_verifiers(built), name, reg, lineage={"campaign": cfg.name, "phase": phase, "phases": earlier})


def load_phase_verifiers(cfg: CampaignConfig, where: str):
    """The verifier set `phase_verifiers` recorded: a local folder or a registry reference."""
    from verifiers.store import load_verifiers

    return load_verifiers(where, None if os.path.isdir(where) else registry(cfg))


def parse_scheme(path: str) -> str:
    return "s3" if path.startswith("s3://") else "file"


def _replace_dir(src: Path, dst: Path, copy: bool = False) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    stage = dst.parent / f".tmp-{dst.name}"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(src, stage)
    shutil.rmtree(dst, ignore_errors=True)
    stage.rename(dst)
