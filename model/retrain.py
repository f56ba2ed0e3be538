"""One retraining round: train on shards, evaluate on a gold set, publish to the registry with lineage.

    rec = retrain("s3://bucket/campaigns/x/phase-1/shards/", name="tiny", registry=ModelRegistry(root),
                  preset="tiny", steps=500, gold="s3://.../saco_gold.json", parent="tiny")

Training runs in-process (`model.train.train`) or, with `workers >= 1`, under Ray Train
(`model.ray_train.train_ray`). `parent` (a registry reference) is fine-tuned instead of a fresh
preset. The published version carries `metrics.json` (gold metrics, training summary) and
`lineage.json` (parent version, shards, training config).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from model.registry import ModelRecord, ModelRegistry
from model.train import TrainConfig, TrainResult, train


def retrain(shards: list[str] | str, name: str, registry: ModelRegistry, *, preset: str = "tiny",
            steps: int = 200, parent: str | None = None, gold: str | dict | None = None,
            gold_images: str | dict | None = None, config: dict | None = None, workers: int = 0,
            out_dir: str | Path | None = None, promote: bool = False) -> tuple[ModelRecord, TrainResult]:
    """Train, evaluate (if `gold`), publish as the next version of `name`; returns (record, result)."""
    fields = {"preset": preset, "steps": steps, **(config or {})}
    parent_ref = None
    if parent:
        parent_rec = registry.get(parent)
        parent_ref = parent_rec.ref
        fields["init_from"] = str(registry.fetch(parent_ref))
    cfg = TrainConfig.from_dict(fields)
    out = Path(out_dir or tempfile.mkdtemp(prefix=f"retrain-{name}-"))
    if workers >= 1:
        from model.ray_train import train_ray

        result = train_ray(cfg, shards, out, num_workers=workers)
    else:
        result = train(cfg, shards, out)
    if not result.model_dir:
        raise RuntimeError(f"training into {out} stopped at step {result.step} without a final model")
    metrics: dict = {"train": {"steps": result.step, "seconds": round(result.seconds, 1),
                               "final_loss": result.history[-1]["loss"] if result.history else None}}
    if gold is not None:
        from model.gold_eval import evaluate_gold
        from model.presets import load_model

        metrics["gold"] = evaluate_gold(load_model(result.model_dir), gold, gold_images)
        metrics["cgF1"] = metrics["gold"]["cgF1"]
    rec = registry.publish(name, result.model_dir, metrics=metrics, parent=parent_ref,
                           shards=shards if isinstance(shards, list) else [shards], config=cfg.to_dict())
    if promote:
        rec = registry.promote(rec.ref)
    return rec, result
