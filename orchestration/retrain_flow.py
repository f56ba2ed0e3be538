"""The steps of the `sam3_retrain` DAG as plain functions: retrain, evaluate, promote-if-not-worse.

Each step is idempotent so a re-run task never duplicates outputs:
- `retrain_step` trains with `model.retrain.retrain` and publishes a new registry version, then
  writes a completion marker `<registry root>/runs/<run key>/retrain.json` naming it. A rerun with
  the same run key (the DAG passes dag id + run id) finds the marker and returns that version.
- `evaluate_step` scores the candidate and the currently promoted version (if any) on the gold set;
  `model.gold_eval` results are pure, so a rerun gives the same numbers.
- `promote_step` promotes the candidate only if its gold cgF1 did not regress (promoting twice is a
  no-op).
"""

from __future__ import annotations

import hashlib
import json
import re

from storage.objectstore import ObjectStore
from storage.uri import join

SUMMARY_KEYS = ("cgF1", "pmF1", "IL_MCC", "IL_precision", "IL_recall")


def registry(root: str, state_url: str | None = None):
    from model.registry import ModelRegistry

    return ModelRegistry(root, state=state_url)


def _marker(root: str, run_key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_key)[:80].strip("-")
    return join(root, "runs", f"{slug}-{hashlib.sha1(run_key.encode()).hexdigest()[:8]}", "retrain.json")


def retrain_step(shards: list[str], name: str, registry_root: str, run_key: str, *,
                 state_url: str | None = None, preset: str = "tiny", steps: int = 200,
                 parent: str | None = None, config: dict | None = None, workers: int = 0) -> dict:
    """Train on `shards` and publish version N+1 of `name`, once per `run_key`."""
    from model.registry import RegistryError
    from model.retrain import retrain

    if not shards:
        raise ValueError(f"retrain of {name!r}: no shards given")
    reg = registry(registry_root, state_url)
    store = ObjectStore()
    marker = _marker(registry_root, run_key)
    if store.exists(marker):
        done = json.loads(store.read_bytes(marker))
        try:
            rec = reg.get(done["ref"])
            return {**done, "uri": rec.uri, "reused": True}
        except RegistryError:
            pass  # the marker names a version the registry no longer has: train again
    rec, result = retrain(list(shards), name, reg, preset=preset, steps=steps, parent=parent,
                          config=config, workers=workers)
    summary = {"ref": rec.ref, "uri": rec.uri, "steps": result.step, "seconds": round(result.seconds, 1),
               "final_loss": rec.metrics.get("train", {}).get("final_loss"), "run_key": run_key}
    store.write_bytes(marker, json.dumps(summary, sort_keys=True).encode())
    return {**summary, "reused": False}


def evaluate_step(ref: str, gold: str, registry_root: str, *, state_url: str | None = None,
                  gold_images: str | None = None) -> dict:
    """Gold metrics of `ref` and of the promoted version of its name (the baseline), if any."""
    from model.gold_eval import evaluate_gold

    reg = registry(registry_root, state_url)
    cand = reg.get(ref)
    promoted = [r for r in reg.list(cand.name) if r.promoted]
    out = {"candidate_ref": cand.ref, "baseline_ref": None, "baseline": None,
           "candidate": {k: v for k, v in evaluate_gold(reg.load(cand.ref), gold, gold_images).items()
                         if k in SUMMARY_KEYS}}
    if promoted and promoted[0].ref != cand.ref:
        base = promoted[0]
        out["baseline_ref"] = base.ref
        out["baseline"] = {k: v for k, v in evaluate_gold(reg.load(base.ref), gold, gold_images).items()
                           if k in SUMMARY_KEYS}
    return out


def promote_step(evaluation: dict, registry_root: str, *, state_url: str | None = None) -> dict:
    """Promote the candidate unless its gold cgF1 is below the baseline's."""
    cand, base = evaluation["candidate"], evaluation.get("baseline")
    if base is not None and cand["cgF1"] < base["cgF1"]:
        return {"promoted": False, "ref": evaluation["candidate_ref"],
                "reason": f"gold cgF1 regressed: {cand['cgF1']:.2f} < {base['cgF1']:.2f} "
                          f"({evaluation['baseline_ref']} stays promoted)"}
    rec = registry(registry_root, state_url).promote(evaluation["candidate_ref"])
    reason = ("no promoted version before" if base is None
              else f"gold cgF1 {cand['cgF1']:.2f} >= {base['cgF1']:.2f} of {evaluation['baseline_ref']}")
    return {"promoted": True, "ref": rec.ref, "reason": reason}
