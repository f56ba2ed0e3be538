"""The training loop of `model.train` under Ray Train (`TorchTrainer`), one worker per GPU or CPU slot.

`train_ray(config, shards, out_dir, num_workers=2)` runs `run_training` in every worker with the
model wrapped in DistributedDataParallel (`ray.train.torch.prepare_model`; gloo on CPU, NCCL on
GPU), the shard list split by rank, and checkpoints reported to Ray Train from every worker (rank 0
attaches the checkpoint folder). A rerun resumes from Ray's latest checkpoint (or the newest under
`out_dir`). Rank 0 writes the final `save_pretrained` model to `out_dir/model`, so `out_dir` must be
reachable from the driver (local disk for an embedded cluster, a shared volume on a real one).

Locally `ray.init` starts an embedded cluster (`RAY_AUTH_MODE=disabled`, a short `_temp_dir`);
pass `ray_address` to use a running one.

`config.max_time_s` bounds the whole call, Ray start-up and worker start-up included: the driver
turns it into a deadline (wall clock) and each worker trains for what is left of it when its loop
starts (`worker_budget`), not for the full budget on top of the start-up.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from model.train import TrainConfig, TrainResult, latest_checkpoint, run_training


def worker_budget(max_time_s: float | None, deadline: float | None, now: float) -> float | None:
    """Seconds a worker may train: what is left until the driver's `deadline` (wall clock), at most
    `max_time_s`; None (no time budget) when there is no budget."""
    if max_time_s is None or deadline is None:
        return max_time_s
    return max(0.0, min(float(max_time_s), deadline - now))


def _worker_loop(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = TrainConfig.from_dict(loop_config["config"])
    device = ray.train.torch.get_device()
    cfg.device = str(device)
    cfg.max_time_s = worker_budget(cfg.max_time_s, loop_config.get("deadline"), time.time())
    torch.set_num_threads(max(1, int(loop_config.get("threads_per_worker", 1))))
    out_dir = Path(loop_config["out_dir"])

    resume = None
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        resume = Path(ckpt.to_directory())
    elif latest_checkpoint(out_dir) is not None:
        resume = latest_checkpoint(out_dir)

    def wrap(module):
        kwargs = {"find_unused_parameters": True}  # the geometry (box prompt) encoder is unused
        return ray.train.torch.prepare_model(module, move_to_device=device, parallel_strategy_kwargs=kwargs)

    def on_checkpoint(path, step, metrics):
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        report["step"] = step
        if path is not None:
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(str(path)))
        else:
            ray.train.report(report)

    run_training(cfg, loop_config["shards"], out_dir, rank=rank, world_size=world, wrap=wrap,
                 on_checkpoint=on_checkpoint, resume_from=resume)


def _init_ray(num_cpus: int | None, ray_address: str | None, temp_dir: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray_address:
        ray.init(address=ray_address)
        return
    temp_dir = temp_dir or tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: socket paths are limited
    ray.init(num_cpus=num_cpus or 2, _temp_dir=temp_dir, include_dashboard=False,
             log_to_driver=False)


def train_ray(config: TrainConfig | dict, shards: list[str] | str, out_dir: str | Path, *, num_workers: int = 2,
              use_gpu: bool = False, cpus_per_worker: int = 1, ray_address: str | None = None,
              ray_temp_dir: str | None = None, name: str = "sam3-train") -> TrainResult:
    """Train with `num_workers` Ray Train workers; returns a TrainResult (model_dir set on success)."""
    start = time.monotonic()
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    deadline = time.time() + cfg.max_time_s if cfg.max_time_s is not None else None
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(shards, str):
        from model.data import expand_shards

        shards = expand_shards(shards)
    _init_ray(num_workers * cpus_per_worker, ray_address, ray_temp_dir)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": cfg.to_dict(), "shards": list(shards), "out_dir": str(out_dir),
                           "threads_per_worker": cpus_per_worker, "deadline": deadline},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=str(out_dir / "ray"),
                             checkpoint_config=CheckpointConfig(num_to_keep=max(1, cfg.keep_checkpoints))),
    )
    result = trainer.fit()
    import json

    history = []
    hist_file = out_dir / "history.jsonl"
    if hist_file.exists():
        history = [json.loads(line) for line in hist_file.read_text().splitlines() if line.strip()]
    step = int((result.metrics or {}).get("step", history[-1]["step"] if history else 0))
    model_dir = out_dir / "model"
    return TrainResult(str(out_dir), str(model_dir) if model_dir.is_dir() else None, step, 0, history,
                       time.monotonic() - start)
