"""Peak GPU memory of one full-size SAM 3 training step (1008 px, batch 1) with and without the options.

    python bench/train_memory.py                      # CUDA, default Sam3Config, random init
    python bench/train_memory.py --device cpu --preset tiny --steps 1   # smoke test of the code path

For each option set (none; freeze vision; freeze text; bf16 autocast; gradient checkpointing; all)
it runs warm-up + measured AdamW steps (forward, SAM 3 losses, backward, clip, step) on one image and
one phrase with three target instances, and prints peak `torch.cuda.max_memory_allocated` (weights,
gradients, AdamW state and activations), its ratio to the plain step, and the step time. The ratio
line comes last. Imports only `model.presets`, `model.losses` and `model.train` (no webdataset,
pycocotools or ray), so it runs on a bare GPU image with torch + transformers + scipy.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OPTION_SETS = [
    ("plain fp32", {}),
    ("freeze vision", {"freeze_vision": True}),
    ("freeze text", {"freeze_text": True}),
    ("bf16 autocast", {"bf16": True}),
    ("grad checkpointing", {"gradient_checkpointing": True}),
    ("freeze text + bf16 + ckpt", {"freeze_text": True, "bf16": True, "gradient_checkpointing": True}),
    ("all four", {"freeze_vision": True, "freeze_text": True, "bf16": True, "gradient_checkpointing": True}),
]


def make_batch(image_size: int, mask_side: int, tokenizer, device):
    import torch

    from model.losses import PairTarget
    from model.preprocess import tokenize

    class Batch:  # the fields train_step reads (model.data.PairBatch without its imports)
        pass

    g = torch.Generator().manual_seed(0)
    b = Batch()
    b.pixel_values = torch.randn(1, 3, image_size, image_size, generator=g).to(device)
    b.image_index = torch.zeros(1, dtype=torch.long, device=device)
    ids, mask = tokenize(tokenizer, ["large striped red circle"], 32)
    b.input_ids, b.attention_mask = ids.to(device), mask.to(device)
    boxes = torch.tensor([[0.1, 0.1, 0.4, 0.3], [0.5, 0.5, 0.9, 0.8], [0.2, 0.6, 0.35, 0.95]])
    masks = torch.zeros(3, mask_side, mask_side)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        masks[i, int(y0 * mask_side):int(y1 * mask_side), int(x0 * mask_side):int(x1 * mask_side)] = 1
    b.targets = [PairTarget(boxes.to(device), masks.to(device))]
    return b


def run_option(loaded, batch, options: dict, steps: int, device) -> dict:
    import torch

    from model.train import Sam3PairModel, TrainConfig, apply_freezing, enable_gradient_checkpointing, make_optimizer
    from model.train import train_step

    model = loaded.model
    model.requires_grad_(True)
    for m in model.modules():  # undo the previous option set's checkpointing
        if getattr(m, "gradient_checkpointing", False) is True:
            m.gradient_checkpointing = False
    cfg = TrainConfig(preset="full", steps=100, warmup_steps=0, **options)
    model.train()
    apply_freezing(model, cfg.freeze_vision, cfg.freeze_text)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(model, cfg)
    pair_model = Sam3PairModel(model)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        metrics = train_step(pair_model, batch, optimizer, scheduler, cfg, cfg.loss_config(), params)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else float("nan")
    trainable = sum(p.numel() for p in params)
    for p in model.parameters():
        p.grad = None
    del optimizer, scheduler, params
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {"peak_gib": peak / 2**30, "step_ms": 1000 * times[-1], "trainable_m": trainable / 1e6,
            "loss": metrics["loss"]}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="full", choices=["full", "tiny"])
    ap.add_argument("--steps", type=int, default=2, help="steps per option set (peak over all; time of the last)")
    args = ap.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("train_memory: no CUDA device here; run it on a GPU machine (or --device cpu --preset tiny)")
        return []
    device = torch.device(args.device)
    from model import presets

    t0 = time.perf_counter()
    loaded = presets.build_full(seed=0, device=device) if args.preset == "full" else presets.build_tiny(seed=0)
    loaded.model.to(device)
    n_params = sum(p.numel() for p in loaded.model.parameters()) / 1e6
    grid = loaded.image_size // loaded.model.config.vision_config.backbone_config.patch_size
    batch = make_batch(loaded.image_size, 4 * grid, loaded.tokenizer, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.preset} Sam3Model {n_params:.0f}M params, {loaded.image_size} px, batch 1 image x 1 phrase, "
          f"AdamW, on {name} (torch {torch.__version__}); built in {time.perf_counter() - t0:.0f} s", flush=True)

    rows = []
    print(f"{'options':28s} {'peak GiB':>9s} {'vs plain':>9s} {'step ms':>9s} {'trainable M':>12s}")
    for label, options in OPTION_SETS:
        try:
            r = run_option(loaded, batch, options, args.steps, device)
        except torch.cuda.OutOfMemoryError as err:  # report it and go on with the next option set
            r = {"peak_gib": float("inf"), "step_ms": float("nan"), "trainable_m": float("nan"), "error": str(err)[:80]}
            torch.cuda.empty_cache()
        r["options"] = label
        rows.append(r)
        base = rows[0]["peak_gib"]
        print(f"{label:28s} {r['peak_gib']:9.2f} {r['peak_gib'] / base:9.2f} {r['step_ms']:9.0f} "
              f"{r['trainable_m']:12.1f}", flush=True)
    best = min(rows, key=lambda r: r["peak_gib"])
    print(f"peak memory of one 1008-px training step: plain {rows[0]['peak_gib']:.1f} GiB, "
          f"{best['options']} {best['peak_gib']:.1f} GiB ({best['peak_gib'] / rows[0]['peak_gib']:.2f}x)")
    return rows


if __name__ == "__main__":
    main()
