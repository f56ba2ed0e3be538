"""The campaign's models: registry access, the initial model, gold sets and gold evaluation.

- The registry is `model.registry.ModelRegistry` under the campaign's storage root, indexed in the
  campaign's state store; the campaign's model is `CampaignConfig.model.name`, its promoted version
  proposes masks.
- `ensure_initial_model`: if nothing of that name is registered, publish `model.init` (a registry ref,
  a save_pretrained folder, or "base": the shipped tiny base model) or a fresh preset, and promote it (a rerun promotes what a crash left).
- Gold sets: for the shapes world, `gold_images` images per domain (a seed apart from the campaign's
  media), written as SA-Co JSON under `campaigns/<name>/gold/<domain>/`; other sources take
  `retrain.gold` (domain -> SA-Co JSON URI) and, without one, have no gold figures.
- `gold_metrics(cfg, ref)` evaluates a model version on every gold set once and caches the result
  in `campaigns/<name>/eval/<version>.json`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from engine.campaign.config import CampaignConfig
from engine.campaign.layout import Layout
from storage.uri import parse

GOLD_SEED_OFFSET = 1000


def local_path(uri: str) -> str:
    loc = parse(uri)
    return loc.path if loc.scheme == "file" else uri


def registry(cfg: CampaignConfig):
    from model.registry import ModelRegistry

    return ModelRegistry(cfg.root, state=cfg.state)


def promoted_ref(cfg: CampaignConfig) -> str:
    reg = registry(cfg)
    return reg.get(f"{cfg.model.name}@promoted").ref


def ensure_initial_model(cfg: CampaignConfig) -> str:
    reg = registry(cfg)
    versions = reg.list(cfg.model.name)
    if any(v.promoted for v in versions):
        return promoted_ref(cfg)
    if not versions:
        init = cfg.model.init
        if init == "base":  # the shipped tiny base model (engine.base_model)
            from engine.base_model import base_model_dir

            init = str(base_model_dir())
        if init and Path(init).is_dir():
            reg.publish(cfg.model.name, init, metrics={}, lineage={"campaign": cfg.name, "init": init})
        elif init:
            reg.publish(cfg.model.name, reg.fetch(init), metrics={}, parent=init,
                        lineage={"campaign": cfg.name, "init": init})
        else:
            from model.presets import build_tiny, save_model

            with tempfile.TemporaryDirectory(prefix="sam3-init-") as tmp:
                save_model(build_tiny(seed=cfg.seed), tmp)
                reg.publish(cfg.model.name, tmp, metrics={},
                            lineage={"campaign": cfg.name, "init": f"fresh {cfg.model.preset} preset, seed {cfg.seed}"})
        versions = reg.list(cfg.model.name)
    return reg.promote(versions[0].ref).ref


def load_model_ref(cfg: CampaignConfig, ref: str | None):
    import torch

    torch.manual_seed(0)
    return registry(cfg).load(ref or promoted_ref(cfg))


def gold_sets(cfg: CampaignConfig) -> dict[str, str]:
    """domain -> SA-Co gold URI (shapes world: generated once per domain)."""
    if cfg.source.kind != "shapes":
        return dict(cfg.retrain.gold)
    if cfg.retrain.gold_images <= 0:
        return {}
    layout = Layout(cfg)
    out = {}
    for domain in cfg.domains():
        uri = layout.gold(domain)
        if not layout.store.exists(uri):
            from engine.cli.world import generate

            generate(uri.rsplit("/", 1)[0], cfg.retrain.gold_images, cfg.source.seed + GOLD_SEED_OFFSET, domain,
                     cfg.retrain.gold_negatives, cfg.source.image_size, progress=False)
        out[domain] = layout.store.uri(uri)
    return out


SUMMARY = ("cgF1", "pmF1", "IL_MCC", "IL_precision", "IL_recall")


def gold_metrics(cfg: CampaignConfig, ref: str) -> dict[str, dict]:
    """{domain: {cgF1, pmF1, IL_MCC, ...}} of a model version on the campaign's gold sets (cached)."""
    layout = Layout(cfg)
    cache = layout.path("eval", f"{ref.replace(':', '_')}.json")
    hit = layout.done(cache)
    golds = gold_sets(cfg)
    if hit is not None and set(hit) == set(golds):
        return hit
    from model.gold_eval import evaluate_gold

    loaded = load_model_ref(cfg, ref)
    out = {}
    for domain, uri in golds.items():
        m = evaluate_gold(loaded, local_path(uri))
        out[domain] = {k: m[k] for k in SUMMARY if k in m}
    layout.mark(cache, out)
    return out


def mean_cgf1(metrics: dict[str, dict]) -> float | None:
    vals = [m["cgF1"] for m in metrics.values() if m.get("cgF1") is not None]
    return sum(vals) / len(vals) if vals else None


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
