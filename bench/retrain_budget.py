"""Where a demo retrain's time budget goes: the campaign's retrain call vs the plain training loop, side by side.

    python bench/retrain_budget.py [--seconds 20] [--rounds 2] [--images 32] [--busy 0]

Writes shards the size the demo writes (32 shapes-world images, 4 positives + 12 negatives each, one
shard), publishes a fresh tiny model as the parent (as a campaign's start does), then, interleaved
for `--rounds` rounds with the same `max_time_s`:
- `plain 1t` / `plain Nt`: `model.train.train` with torch fixed at 1 / N (usable CPUs) threads,
  the loop of `bench/train_tiny.py` (which runs at `--threads 2`);
- `retrain`: `model.retrain.retrain` exactly as the campaign's retrain step calls it (registry
  fetch of the parent, build, train, checkpoint, save, publish), with the threads its policy picks.
Each run prints steps/s over its whole wall time and the breakdown (model build, data = batch
decode, step = forward/backward/optimizer, checkpoint + final save, publish, rest; diag = the learning
diagnostics computed inside some steps, where the loop has them), then the ratio of
the retrain's steps/s to each plain loop's. `--busy K` starts K busy-looping processes for the
duration, to see a shared machine on an idle one (they are stopped by pid at the end).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TIMES: dict[str, float] = collections.defaultdict(float)


def _timed(owner, name: str, key: str) -> None:
    fn = getattr(owner, name)

    def wrapper(*a, **kw):
        t = time.monotonic()
        try:
            return fn(*a, **kw)
        finally:
            TIMES[key] += time.monotonic() - t

    setattr(owner, name, wrapper)


def _instrument() -> None:
    import model.data
    import model.registry
    import model.train

    _timed(model.train, "build_model", "build")
    _timed(model.train, "train_step", "step")
    _timed(model.data, "collate", "data")
    _timed(model.train, "save_checkpoint", "save")
    _timed(model.train, "save_model", "save")
    _timed(model.registry.ModelRegistry, "publish", "publish")
    _timed(model.registry.ModelRegistry, "fetch", "fetch")
    try:  # learning diagnostics, computed inside the step every log_every steps
        import model.diagnostics

        _timed(model.diagnostics, "batch_diagnostics", "diag")
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="max_time_s of every run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=32, help="images in the shard (the demo: 32 per phase)")
    ap.add_argument("--busy", type=int, default=0, help="busy-looping processes to run alongside")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch

    from engine.world.samples import generate_samples
    from model.presets import build_tiny, save_model
    from model.recipes import TINY_RECIPE
    from model.registry import ModelRegistry
    from model.retrain import retrain
    from model.thread_tuner import torch_threads
    from model.train import train
    from storage.shards import write_shards

    _instrument()
    out = Path(args.out or tempfile.mkdtemp(prefix="retrain-budget-"))
    shards = write_shards(generate_samples(args.images, seed=0, negatives_per_image=12), str(out / "shards"),
                          "train", max_samples=100)
    reg = ModelRegistry(str(out / "root"))
    with tempfile.TemporaryDirectory() as tmp:
        save_model(build_tiny(seed=0), tmp)
        parent = reg.promote(reg.publish("demo-tiny", tmp, metrics={}).ref).ref
    parent_dir = str(reg.fetch(parent))
    config = {**TINY_RECIPE, "seed": 0, "max_time_s": args.seconds}
    n = os.cpu_count() or 1
    default_threads = torch.get_num_threads()

    def plain(threads: int, k: int):
        with torch_threads(threads):
            conf = {**config, "steps": 100_000, "init_from": parent_dir}
            return train(conf, shards, out / f"plain{threads}-{k}"), None

    def campaign_retrain(k: int):
        rec, result = retrain(shards, "demo-tiny", reg, steps=100_000, parent=parent, config=config,
                              out_dir=out / f"retrain-{k}")
        return result, rec.metrics["train"].get("threads")

    runs = {"plain 1t": lambda k: plain(1, k), f"plain {n}t": lambda k: plain(n, k), "retrain": campaign_retrain}
    rates: dict[str, list[float]] = collections.defaultdict(list)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    print(f"{args.images} images, 1 shard; max_time_s {args.seconds:.0f}; {n} CPUs, torch default threads "
          f"{default_threads}, busy processes {args.busy}", flush=True)
    try:
        for k in range(args.rounds):
            for name, run in runs.items():
                TIMES.clear()
                load = os.getloadavg()[0]
                t0 = time.monotonic()
                result, threads = run(k)
                wall = time.monotonic() - t0
                rates[name].append(result.step / wall)
                parts = {key: TIMES.get(key, 0.0) for key in ("build", "data", "step", "save", "fetch", "publish")}
                parts["rest"] = wall - sum(parts.values())
                parts["diag"] = TIMES.get("diag", 0.0)  # part of "step"
                print(f"round {k + 1} {name:9s} {result.step:4d} steps in {wall:5.1f} s = {result.step / wall:4.2f} "
                      f"steps/s (load {load:.1f}) | " + "  ".join(f"{key} {v:.1f}" for key, v in parts.items())
                      + (f" | threads {threads}" if threads else ""), flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    med = {name: statistics.median(v) for name, v in rates.items()}
    print("median steps/s: " + ", ".join(f"{name} {v:.2f}" for name, v in med.items()))
    for name in runs:
        if name != "retrain":
            print(f"retrain / {name}: {med['retrain'] / med[name]:.2f}x")
    return med


if __name__ == "__main__":
    main()
