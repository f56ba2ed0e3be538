"""One retraining round: train on shards, evaluate on a gold set, publish to the registry with lineage.

    rec = retrain("s3://bucket/campaigns/x/phase-1/shards/", name="tiny", registry=ModelRegistry(root),
                  preset="tiny", steps=500, gold="s3://.../saco_gold.json", parent="tiny")

Training runs in-process (`model.train.train`) or, with `workers >= 1`, under Ray Train
(`model.ray_train.train_ray`). `parent` (a registry reference) is fine-tuned instead of a fresh
preset. The published version carries `metrics.json` (gold metrics, training summary) and
`lineage.json` (parent version, shards, training config).

Torch CPU threads of in-process training on the CPU: `threads` (or `SAM3_ENGINE_TRAIN_THREADS`) fixes
the count; the default, "auto", lets `model.thread_tuner.ThreadTuner` pick between 1 and the usable
CPUs by measured step rate (2 threads are ~1.4x faster on an idle 2-core machine and 3-8x slower
than 1 when another process shares the cores). The caller's thread count is restored afterwards, and
the training summary in `metrics.json` says what was used (`train.threads`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from model.registry import ModelRecord, ModelRegistry
from model.train import TrainConfig, TrainResult, resolve_device, train

THREADS_ENV = "SAM3_ENGINE_TRAIN_THREADS"


def thread_policy(threads: int | str | None, device: str) -> int | str | None:
    """The thread count to train with: an int, "auto" (ThreadTuner) or None (leave torch's as is).

    `threads` wins, then `$SAM3_ENGINE_TRAIN_THREADS`, then "auto" on the CPU and None on a GPU.
    """
    value = threads if threads is not None else os.environ.get(THREADS_ENV) or None
    if value is None:
        return "auto" if resolve_device(device).type == "cpu" else None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"train threads must be a positive integer or 'auto', got {value!r}") from None
    if count < 1:
        raise ValueError(f"train threads must be a positive integer or 'auto', got {value!r}")
    return count


def train_in_process(cfg: TrainConfig, shards, out: Path, threads: int | str | None = None) -> tuple[TrainResult, dict]:
    """`model.train.train` under the thread policy; returns (result, {"threads": ...} summary)."""
    policy = thread_policy(threads, cfg.device)
    if policy == "auto":
        from model.thread_tuner import ThreadTuner

        with ThreadTuner() as tuner:
            result = train(cfg, shards, out, after_backward=tuner.tick)
        return result, {"threads": tuner.summary()}
    if policy is None:
        return train(cfg, shards, out), {}
    from model.thread_tuner import torch_threads

    with torch_threads(policy):
        result = train(cfg, shards, out)
    return result, {"threads": {"threads": policy}}


def retrain(shards: list[str] | str, name: str, registry: ModelRegistry, *, preset: str = "tiny",
            steps: int = 200, parent: str | None = None, gold: str | dict | None = None,
            gold_images: str | dict | None = None, config: dict | None = None, workers: int = 0,
            out_dir: str | Path | None = None, promote: bool = False,
            threads: int | str | None = None) -> tuple[ModelRecord, TrainResult]:
    """Train, evaluate (if `gold`), publish as the next version of `name`; returns (record, result).

    `threads`: torch CPU threads of in-process training (see the module docstring)."""
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
        used = {}
    else:
        result, used = train_in_process(cfg, shards, out, threads)
    if not result.model_dir:
        raise RuntimeError(f"training into {out} stopped at step {result.step} without a final model")
    metrics: dict = {"train": {"steps": result.step, "seconds": round(result.seconds, 1),
                               "final_loss": result.history[-1]["loss"] if result.history else None, **used}}
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
