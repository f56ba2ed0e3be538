"""The shipped tiny base model: a `Sam3Model` trained from scratch on the shapes world's base domain.

Real users start from facebook/sam3; the embedded default starts from this checkpoint
(`model/weights/tiny-base`, about 1 MB), so campaigns fine-tune a model that already finds things
instead of a random one. It is rebuilt with one command, which resumes where a stopped run left off
(checkpoints under the work folder; the learning-rate schedule follows steps, or `--max-minutes` when
that deadline comes first, in which case a rerun starts the time budget afresh):

    sam3-engine model train-base --work runs/tiny-base --steps 30000 --export model/weights/tiny-base

Train images come from world seed `TRAIN_SEED`; the gold set that scores it uses `GOLD_SEED`, which
is never trained on. The figures (gold cgF1 / pmF1 / IL_MCC and the learning diagnostics) are
written as `figures.json` beside the exported weights.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

TRAIN_SEED = 1
GOLD_SEED = 2
BASE_DOMAIN = "base"
BASE_DIR = Path(__file__).resolve().parents[1] / "model" / "weights" / "tiny-base"
FIGURES = "figures.json"
CALIB_SEED = 3  # score calibration images: neither train (seed 1) nor gold (seed 2)
CALIB_IMAGES = 8
CHECK_GOLD_IMAGES = 8  # the small gold set the test suite re-scores the shipped model on


def base_model_dir() -> Path:
    """The committed base model's folder (a `save_pretrained` dir loadable by `model.presets.load_model`)."""
    return BASE_DIR


def ensure_shards(work: Path, images: int, seed: int = TRAIN_SEED, domain: str = BASE_DOMAIN) -> list[str]:
    """World shards of `images` images under `work/shards` (reused when a finished set is there)."""
    from storage.shards import list_shards, write_shards

    from engine.world.samples import generate_samples

    folder = work / "shards"
    done = folder / "complete.json"
    wanted = {"images": images, "seed": seed, "domain": domain}
    if done.is_file() and json.loads(done.read_text()) == wanted:
        return list_shards(str(folder), "train")
    shutil.rmtree(folder, ignore_errors=True)
    shards = write_shards(generate_samples(images, seed, domain, negatives_per_image=8), str(folder), "train",
                          max_samples=200)
    done.write_text(json.dumps(wanted))
    return shards


def base_config(steps: int, seed: int = 0) -> dict:
    from model.recipes import TINY_BASE_RECIPE

    return {**TINY_BASE_RECIPE, "steps": steps, "seed": seed, "warmup_steps": 200}


def evaluate_base(loaded, gold_images: int = 40, domain: str = BASE_DOMAIN, negatives: int = 16) -> dict:
    """Gold metrics of `loaded` on `gold_images` images of world seed `GOLD_SEED` in `domain`."""
    from model.gold_eval import evaluate_gold

    from engine.world.samples import gold_document

    gold, images = gold_document(gold_images, GOLD_SEED, domain, negatives)
    metrics = evaluate_gold(loaded, gold, images)
    return {k: metrics[k] for k in ("cgF1", "pmF1", "IL_MCC") if k in metrics}


def finish_base(model_dir: str | Path, gold_images: int = 40, export: str | Path | None = None,
                run: dict | None = None) -> dict:
    """Calibrate a trained base model's scores (world seed `CALIB_SEED`), score it on gold (seed
    `GOLD_SEED`, uncalibrated and calibrated), save the calibration and `figures.json` (with `run`:
    steps, seconds, config) beside it, optionally export it."""
    from model.calibration import calibrate_scores
    from model.presets import load_model
    from model.train import save_model

    from engine.world.samples import gold_document

    loaded = load_model(model_dir)
    uncalibrated = evaluate_base(loaded, gold_images)
    cal_gold, cal_images = gold_document(CALIB_IMAGES, CALIB_SEED, BASE_DOMAIN, 16)
    calibration = calibrate_scores(loaded, cal_gold, cal_images)
    save_model(loaded, model_dir)
    figures = {"train_seed": TRAIN_SEED, "gold_seed": GOLD_SEED, "calibration_seed": CALIB_SEED,
               "gold_images": gold_images, "domain": BASE_DOMAIN, "gold_uncalibrated": uncalibrated,
               "gold": evaluate_base(loaded, gold_images), "calibration": calibration,
               "check_gold": {"images": CHECK_GOLD_IMAGES, **evaluate_base(loaded, CHECK_GOLD_IMAGES)},
               **(run or {})}
    (Path(model_dir) / FIGURES).write_text(json.dumps(figures, indent=2, default=str))
    if export:
        shutil.rmtree(export, ignore_errors=True)
        shutil.copytree(model_dir, export)
    return figures


def train_base(work: str | Path, steps: int, *, shards: list[str] | str | None = None, images: int = 16000,
               gold_images: int = 40, export: str | Path | None = None, threads: int | None = None,
               max_minutes: float | None = None) -> dict:
    """Train (or resume) the base model in `work`, score it on gold, optionally export it; returns figures."""
    import torch

    from model.train import train

    if threads:
        torch.set_num_threads(threads)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    shards = shards or ensure_shards(work, images)
    cfg = base_config(steps)
    if max_minutes:  # a deadline: the LR schedule then decays by whichever of steps and time is ahead
        cfg["max_time_s"] = max_minutes * 60
    result = train(cfg, shards, work / "run")
    if not result.model_dir:
        raise RuntimeError(f"base training in {work} stopped at step {result.step} without a final model")
    run = {"steps": result.step, "seconds_this_run": round(time.monotonic() - t0, 1), "config": cfg}
    return finish_base(result.model_dir, gold_images, export, run)
