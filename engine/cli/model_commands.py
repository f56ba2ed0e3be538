"""`sam3-engine model ...`: train, predict, evaluate, list and promote SAM 3 model versions.

A model reference (`--model`) is a preset name (`tiny`: random weights; `full`: the directory in
`$SAM3_FULL_DIR`), a local save_pretrained folder, or a registry reference (`name`, `name:v0002`,
`name@promoted`) under the storage root (`--root`, default `$SAM3_ENGINE_ROOT` or `./sam3-data`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

DEFAULT_ROOT = "sam3-data"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

RootOption = typer.Option(None, "--root", help="Storage root holding the model registry "
                          "(folder or s3:// prefix; default $SAM3_ENGINE_ROOT or ./sam3-data).")
StateOption = typer.Option(None, "--state-url", help="SQLAlchemy URL of the state store "
                           "(default: SQLite file under a local root).")


def storage_root(root: str | None) -> str:
    return root or os.environ.get("SAM3_ENGINE_ROOT") or DEFAULT_ROOT


def open_registry(root: str | None, state_url: str | None = None):
    from model.registry import ModelRegistry

    return ModelRegistry(storage_root(root), state=state_url)


def load_model_ref(ref: str, root: str | None, state_url: str | None = None, device: str = "cpu"):
    """Load a preset, a local model folder or a registry version; a bad reference exits with code 2."""
    from transformers.utils import logging as hf_logging

    from model.presets import ModelLoadError, load_model
    from model.registry import RegistryError

    hf_logging.disable_progress_bar()  # keep stdout machine-readable (eval prints JSON)
    try:
        if ref in ("tiny", "full") or os.path.isdir(ref):
            return load_model(ref, device=device)
        return open_registry(root, state_url).load(ref, device=device)
    except (ModelLoadError, RegistryError) as err:
        _fail(f"--model {ref!r}: {err}")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def list_images(folder: str) -> list[Path]:
    path = Path(folder)
    if not path.is_dir():
        _fail(f"--images {folder!r} is not a folder")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        _fail(f"--images {folder!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def predict_folder(loaded, images: list[Path], phrases: list[str], base: Path) -> tuple[list[dict], list[dict]]:
    """COCO-results predictions keyed by pair id (media id = path relative to `base`), and errors."""
    from model.predictor import Predictor
    from storage.records import pair_id

    items = [(p.relative_to(base).as_posix(), p, phrases) for p in images]
    predictions, errors = [], []
    for res in Predictor(loaded).predict_iter(items):
        if res.error:
            errors.append({"image": res.image_id, "error": res.error})
            continue
        for pair in res.pairs:
            for inst in pair.instances:
                x, y, w, h = inst.bbox
                predictions.append({
                    "image_id": pair_id(res.image_id, pair.phrase), "file_name": res.image_id,
                    "text_input": pair.phrase, "category_id": 1, "score": inst.score,
                    "segmentation": inst.rle,
                    "bbox": [x / res.width, y / res.height, w / res.width, h / res.height],
                })
    return predictions, errors


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(help="SAM 3 models: train, predict, evaluate, list, promote.", no_args_is_help=True)
    app.add_typer(model_app, name="model")

    @model_app.command("train")
    def train_cmd(
        shards: str = typer.Option(..., "--shards", help="Shard folder/prefix, a .tar, or a brace pattern."),
        out: str = typer.Option(..., "--out", help="Registry name to publish the trained model as."),
        preset: str = typer.Option("tiny", "--preset", help="Model preset to start from: tiny or full."),
        steps: int = typer.Option(200, "--steps", min=1, help="Optimiser steps."),
        max_time: Optional[float] = typer.Option(None, "--max-time", help="Stop after this many seconds."),
        init_from: Optional[str] = typer.Option(None, "--init-from", help="Model reference to fine-tune."),
        lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate."),
        work_dir: Optional[str] = typer.Option(None, "--work-dir", help="Checkpoints folder "
                                               "(default <root>/runs/<out>); rerunning resumes from it."),
        root: Optional[str] = RootOption,
        state_url: Optional[str] = StateOption,
    ) -> None:
        """Train on WebDataset shards (resuming from the work dir's last checkpoint) and publish."""
        from model.train import TrainConfig, train

        if preset not in ("tiny", "full"):
            _fail(f"--preset {preset!r} is not one of tiny, full")
        registry = open_registry(root, state_url)
        init_dir = None
        if init_from:
            init_dir = init_from if os.path.isdir(init_from) else str(registry.fetch(init_from))
        work = work_dir or str(Path(storage_root(root)) / "runs" / out)
        cfg = TrainConfig(preset=preset, init_from=init_dir, steps=steps, max_time_s=max_time, lr=lr)
        result = train(cfg, shards, work)
        record = registry.publish(out, result.model_dir, shards=shards, config=cfg.to_dict(),
                                  parent=init_from if init_from and not os.path.isdir(init_from) else None,
                                  metrics={"final_loss": result.history[-1]["loss"] if result.history else None,
                                           "steps": result.step})
        typer.echo(f"trained {result.step} steps (resumed from {result.resumed_from}) in {result.seconds:.0f} s")
        typer.echo(f"published {record.ref} at {record.uri}")

    @model_app.command("train-base")
    def train_base_cmd(
        work: str = typer.Option(..., "--work", help="Work folder (shards, checkpoints); rerunning resumes."),
        steps: int = typer.Option(30000, "--steps", min=1, help="Optimiser steps of the whole run."),
        images: int = typer.Option(16000, "--images", min=1, help="World images to train on (seed 1)."),
        shards: Optional[str] = typer.Option(None, "--shards", help="Train on these shards instead."),
        gold_images: int = typer.Option(40, "--gold-images", min=1, help="Gold images (seed 2) to score on."),
        export: Optional[str] = typer.Option(None, "--export", help="Copy the trained model here "
                                             "(the shipped one: model/weights/tiny-base)."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop (and finish the "
                                                    "schedule) after this many minutes of training."),
    ) -> None:
        """Train the tiny base model from scratch on the shapes world (base domain) and score it on gold."""
        from engine.base_model import train_base

        figures = train_base(work, steps, shards=shards, images=images, gold_images=gold_images,
                             export=export, threads=threads, max_minutes=max_minutes)
        g = figures["gold"]
        typer.echo(f"base model after {figures['steps']} steps: gold cgF1 {g['cgF1']:.1f} "
                   f"(pmF1 {g['pmF1']:.3f}, IL_MCC {g['IL_MCC']:.3f})")
        if export:
            typer.echo(f"exported to {export}")

    @model_app.command("predict")
    def predict_cmd(
        model: str = typer.Option(..., "--model", help="Model reference (preset, folder or registry ref)."),
        out: Path = typer.Option(..., "--out", help="Where to write the COCO-results JSON."),
        images: Optional[str] = typer.Option(None, "--images", help="Folder of images."),
        phrases: Optional[str] = typer.Option(None, "--phrases", help="Comma-separated noun phrases."),
        gold: Optional[str] = typer.Option(None, "--gold", help="SA-Co gold JSON: predict its pairs, keyed "
                                           "by its pair ids (images from --images or beside the gold)."),
        root: Optional[str] = RootOption,
        state_url: Optional[str] = StateOption,
    ) -> None:
        """Predict masks for images x phrases (or for every pair of a gold file)."""
        loaded = load_model_ref(model, root, state_url)
        errors: list[dict] = []
        if gold:
            from model.gold_eval import predict_gold

            predictions = predict_gold(loaded, gold, images)
        else:
            if not images or not phrases:
                _fail("give --images and --phrases, or --gold")
            from storage.records import PhraseError, validate_phrase

            try:
                phrase_list = [validate_phrase(p.strip()) for p in phrases.split(",") if p.strip()]
            except PhraseError as err:
                _fail(f"--phrases: {err}")
            predictions, errors = predict_folder(loaded, list_images(images), phrase_list, Path(images))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(predictions))
        for err in errors:
            typer.echo(f"skipped {err['image']}: {err['error']}", err=True)
        typer.echo(f"wrote {len(predictions)} predictions to {out}")

    @model_app.command("eval")
    def eval_cmd(
        model: str = typer.Option(..., "--model", help="Model reference (preset, folder or registry ref)."),
        gold: str = typer.Option(..., "--gold", help="SA-Co gold JSON."),
        images: Optional[str] = typer.Option(None, "--images", help="Image folder (default: beside the gold)."),
        root: Optional[str] = RootOption,
        state_url: Optional[str] = StateOption,
    ) -> None:
        """Predict every gold pair and print the same JSON as `sam3-engine eval`."""
        from model.gold_eval import evaluate_gold

        typer.echo(json.dumps(evaluate_gold(load_model_ref(model, root, state_url), gold, images), indent=2))

    @model_app.command("list")
    def list_cmd(
        name: Optional[str] = typer.Argument(None, help="Only versions of this model name."),
        root: Optional[str] = RootOption,
        state_url: Optional[str] = StateOption,
    ) -> None:
        """List registered model versions (oldest first) as JSON lines."""
        for record in open_registry(root, state_url).list(name):
            typer.echo(json.dumps(record.to_dict(), default=str))

    @model_app.command("promote")
    def promote_cmd(
        ref: str = typer.Argument(..., help="Registry reference to promote (name:version)."),
        root: Optional[str] = RootOption,
        state_url: Optional[str] = StateOption,
    ) -> None:
        """Mark a version as its name's promoted model."""
        from model.registry import RegistryError

        try:
            record = open_registry(root, state_url).promote(ref)
        except RegistryError as err:
            _fail(str(err))
        typer.echo(f"promoted {record.ref}")
