"""Predictor throughput as a ratio of raw ``Sam3Model`` forward loops on the same images.

Rows (all measured in this one run, same model, images and phrases):
- raw recompute: ``model(pixel_values, input_ids)`` per pair, batches of ``--batch-size`` pairs, the
  vision encoder recomputed for every pair (pixels pre-processed and already on the device).
- raw vision-reuse: hand-written ideal: ``get_vision_features`` once per image, heads per pair with
  ``vision_embeds=`` (no pre/post-processing at all). Also gives vision ms/image and head ms/phrase.
- predictor: ``model.predictor.Predictor.predict`` from decoded PIL images to RLE masks, boxes,
  scores and semantic summaries (pre-processing, post-processing and RLE included).
at 1 phrase per image and at ``--phrases`` (28) phrases per image. Random weights give meaningless
scores, so the score threshold is calibrated to keep ``--keep`` instances per pair on average (real
post-processing work). ``--compile`` measures eager first, then compiles the vision encoder once
(fixed batch shapes everywhere) and measures again. Needs no pycocotools, ray or webdataset.

CPU:  python bench/predictor.py                      (tiny preset)
GPU:  python bench/predictor.py --preset full --device cuda --dtype bfloat16 --compile
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from model.postprocess import masks_to_rle  # noqa: E402
from model.predictor import Predictor  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001 - partial output survives a timeout
from model.preprocess import load_image, resize_normalise, tokenize  # noqa: E402
from model.presets import build_full, build_tiny, load_model  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink"]
SHAPES = ["circle", "square", "triangle", "star"]


def phrases(n: int) -> list[str]:
    return [f"{c} {s}" for s in SHAPES for c in COLOURS][:n] + [f"shape {i}" for i in range(max(0, n - 28))]


def make_images(n: int, width: int, height: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n):
        img = Image.fromarray(rng.randint(0, 80, (height, width, 3), np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(3, 12)):
            x, y = rng.randint(0, width), rng.randint(0, height)
            r = rng.randint(5, max(6, min(width, height) // 6))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.randint(80, 255, 3)))
        out.append(img)
    return out


def ellipse_masks(n: int, h: int, w: int, device) -> torch.Tensor:
    """``n`` filled ellipses of assorted sizes: a stand-in for real instance masks."""
    rng = np.random.RandomState(1)
    yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    out = []
    for _ in range(n):
        cx, cy, rx, ry = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, w / 4), rng.uniform(5, h / 4)
        out.append(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1)
    return torch.stack(out)


class Timer:
    def __init__(self, device: torch.device, repeats: int):
        self.device, self.repeats = device, repeats

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn) -> float:
        """Warm up once, then the best of ``repeats`` runs (seconds)."""
        fn()
        self.sync()
        best = float("inf")
        for _ in range(self.repeats):
            t = time.perf_counter()
            fn()
            self.sync()
            best = min(best, time.perf_counter() - t)
        return best


def pad_to(x: torch.Tensor, n: int) -> torch.Tensor:
    return x if x.shape[0] == n else torch.cat([x, x[:1].expand(n - x.shape[0], *x.shape[1:])])


@torch.inference_mode()
def raw_recompute(model, pix, ids, mask, pairs, bs):
    for j in range(0, len(pairs), bs):
        img = torch.tensor([p[0] for p in pairs[j:j + bs]], device=pix.device)
        ph = torch.tensor([p[1] for p in pairs[j:j + bs]], device=pix.device)
        model(pixel_values=pix[img], input_ids=ids[ph], attention_mask=mask[ph])


@torch.inference_mode()
def raw_reuse(model, pix, ids, mask, n_phrases, bs, part="all"):
    """Vision once per image (chunks of ``bs``, padded), heads per pair. part: all | vision."""
    for c in range(0, pix.shape[0], bs):
        chunk = pix[c:c + bs]
        vis = model.get_vision_features(pixel_values=pad_to(chunk, bs))
        if part == "vision":
            continue
        pairs = [(i, k) for i in range(chunk.shape[0]) for k in range(n_phrases)]
        for j in range(0, len(pairs), bs):
            img = torch.tensor([p[0] for p in pairs[j:j + bs]], device=pix.device)
            ph = torch.tensor([p[1] for p in pairs[j:j + bs]], device=pix.device)
            ve = type(vis)(fpn_hidden_states=tuple(f[img] for f in vis.fpn_hidden_states),
                           fpn_position_encoding=tuple(f[img] for f in vis.fpn_position_encoding))
            model(vision_embeds=ve, input_ids=ids[ph], attention_mask=mask[ph])


def calibrate_threshold(pred: Predictor, items, keep: float) -> float:
    """Score threshold that keeps ``keep`` instances per pair on average (random weights)."""
    pred.score_threshold = 2.0
    pairs = [p for r in pred.predict(items) for p in r.pairs]
    scores = np.concatenate([np.asarray(p.scores) for p in pairs])
    q = 1.0 - keep * len(pairs) / scores.size
    return float(np.quantile(scores, min(max(q, 0.0), 1.0)))


def kept_per_pair(results) -> float:
    pairs = [p for r in results for p in r.pairs]
    return sum(len(p.instances) for p in pairs) / max(1, len(pairs))


def run_block(label, lm, args, timer, images, pix, ids, mask, phr, compiled):
    model, bs, n1, n28, k = lm.model, args.batch_size, args.images, args.images_28, args.phrases
    rows = {}
    pred = Predictor(lm, batch_size=bs, image_batch_size=bs, compile=compiled, score_threshold=2.0)
    items1 = [(f"i{i}", images[i], [phr[i % k]]) for i in range(n1)]
    items28 = [(f"i{i}", images[i], phr) for i in range(n28)]
    pred.score_threshold = args.threshold if args.threshold is not None else calibrate_threshold(pred, items28, args.keep)
    t = timer(lambda: raw_recompute(model, pix[:n1], ids, mask, [(i, i % k) for i in range(n1)], bs))
    rows["raw recompute, 1 phrase"] = n1 / t
    out = {}
    t = timer(lambda: out.update(r=pred.predict(items1)))
    rows["predictor, 1 phrase"] = n1 / t
    kept1 = kept_per_pair(out["r"])
    raw_pairs = [(i % n28, i % k) for i in range(args.raw_pairs)]
    t = timer(lambda: raw_recompute(model, pix[:n28], ids, mask, raw_pairs, bs))
    rows[f"raw recompute, {k} phrases"] = len(raw_pairs) / t / k
    t_all = timer(lambda: raw_reuse(model, pix[:n28], ids, mask, k, bs))
    t_vis = timer(lambda: raw_reuse(model, pix[:n28], ids, mask, k, bs, part="vision"))
    rows[f"raw vision-reuse, {k} phrases"] = n28 / t_all
    t = timer(lambda: out.update(r=pred.predict(items28)))
    rows[f"predictor, {k} phrases"] = n28 / t
    kept28 = kept_per_pair(out["r"])
    pred.encode_rle = False
    t_norle = timer(lambda: pred.predict(items28))
    pred.encode_rle = True
    rows[f"predictor no RLE, {k} phrases"] = n28 / t_norle
    vis_ms = 1000 * t_vis / (-(-n28 // bs) * bs)
    head_ms = 1000 * (t_all - t_vis) / (n28 * k)
    print(f"\n[{label}] images/s (batch {bs}; threshold {pred.score_threshold:.4f}: "
          f"{kept1:.1f} / {kept28:.1f} instances per pair kept at 1 / {k} phrases)")
    for name, v in rows.items():
        print(f"  {name:<34} {v:9.2f} img/s")
    print(f"  raw vision-reuse parts: vision {vis_ms:.1f} ms/img, heads {head_ms:.2f} ms/phrase "
          f"= {1000 / head_ms:.1f} extra phrases/s")
    masks = ellipse_masks(64, images[0].height, images[0].width, model.device)
    t_rle = timer(lambda: masks_to_rle(masks))
    print(f"  RLE encoding alone: {1000 * t_rle / 64:.3f} ms per {images[0].width}x{images[0].height} mask "
          f"(on {model.device.type})")
    r1 = rows["predictor, 1 phrase"] / rows["raw recompute, 1 phrase"]
    r28 = rows[f"predictor, {k} phrases"] / rows[f"raw recompute, {k} phrases"]
    r28i = rows[f"predictor, {k} phrases"] / rows[f"raw vision-reuse, {k} phrases"]
    figure = (f"{label}: predictor/raw 1 phrase {r1:.2f}x; {k} phrases {r28:.2f}x raw recompute, "
              f"{r28i:.2f}x raw vision-reuse")
    print(f"  -> {figure}")
    return figure


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--weights", help="a local SAM 3 directory (default: random weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--compile", action="store_true", help="also measure with the vision encoder compiled")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--images", type=int, default=None, help="images at 1 phrase (multiple of batch)")
    ap.add_argument("--images-28", type=int, default=None, help="images at --phrases phrases")
    ap.add_argument("--phrases", type=int, default=28)
    ap.add_argument("--raw-pairs", type=int, default=None, help="pairs timed for raw recompute")
    ap.add_argument("--size", default=None, help="image size WxH (default 640x480; tiny 320x240)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--keep", type=float, default=3.0, help="instances per pair when calibrating")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default 1 on CPU)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads or 1)
    bs = args.batch_size
    args.images = args.images or (4 * bs if gpu else 2 * bs)
    args.images_28 = args.images_28 or (bs if gpu else 4)
    args.raw_pairs = args.raw_pairs or 4 * bs
    args.repeats = args.repeats or (1 if gpu else 3)
    w, h = map(int, (args.size or ("640x480" if args.preset == "full" else "320x240")).split("x"))
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    if args.weights:
        lm = load_model(args.weights, device=device, dtype=dtype)
    elif args.preset == "full":
        lm = build_full(seed=0, device=device, dtype=dtype)
    else:
        lm = build_tiny(seed=0, device=device, dtype=dtype)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    print(f"model {args.preset} ({sum(p.numel() for p in lm.model.parameters()) / 1e6:.1f}M params, "
          f"{lm.image_size}px) on {device} {args.dtype}, built in {time.perf_counter() - t0:.1f}s; "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if gpu:
        print(f"device: {torch.cuda.get_device_name(device)}")
    n_img = max(args.images, args.images_28)
    images = make_images(n_img, w, h)
    with torch.inference_mode():  # inference tensors, as the predictor's: no dynamo recompile
        pix = torch.stack([resize_normalise(load_image(im), lm.image_size, lm.image_mean, lm.image_std,
                                            device=device) for im in images]).to(dtype)
    phr = phrases(args.phrases)
    ids, mask = tokenize(lm.tokenizer, phr, lm.max_text_len)
    ids, mask = ids.to(device), mask.to(device)
    timer = Timer(device, args.repeats)
    print(f"{n_img} images {w}x{h}; {args.images} at 1 phrase, {args.images_28} at {args.phrases} phrases; "
          f"raw recompute timed on {args.raw_pairs} pairs; best of {args.repeats} after a warm-up")
    figures = [run_block("eager", lm, args, timer, images, pix, ids, mask, phr, compiled=False)]
    if args.compile:
        t = time.perf_counter()
        lm.model.vision_encoder.compile()
        with torch.inference_mode():
            lm.model.get_vision_features(pixel_values=pix[:bs])
        timer.sync()
        print(f"\nvision encoder compiled in {time.perf_counter() - t:.1f}s")
        figures.append(run_block("compiled", lm, args, timer, images, pix, ids, mask, phr, compiled=True))
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    print("FIGURE: " + " | ".join(figures))


if __name__ == "__main__":
    main()
