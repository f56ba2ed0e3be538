"""Benchmark: shapes-world generator images/s and PCS evaluator pairs/s, measured in one run.

Generator: rendering only (`render_scene`), full samples (PNG + RLE masks + phrases + negatives,
`generate_samples`) and video frames, each for the same number of images. Evaluator: GT from
generated images, replicated under fresh pair ids up to `--pairs` pairs (default 100k, the target is
under a minute), with perturbed predictions (masks grown or shrunk 1-2 px, ~10 % of instances missed,
false positives on ~15 % of negatives, random scores), scored by `model.metrics.evaluate`.
Figures are printed last.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# run as `python bench/world.py`: import the repo's packages, not bench/'s sibling scripts (storage.py)
_ROOT = str(Path(__file__).resolve().parents[1])
sys.path[:] = [_ROOT] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from engine.humans.simulated import boundary_noise  # noqa: E402
from engine.world.samples import generate_samples  # noqa: E402
from engine.world.scene import render_scene  # noqa: E402
from engine.world.video import generate_video  # noqa: E402
from storage.masks import instance_to_mask, mask_to_instance  # noqa: E402
from storage.records import Instance  # noqa: E402
from storage.saco import ImageMeta, to_saco  # noqa: E402


def _rate(n: int, fn) -> tuple[float, float]:
    """(items per wall-clock second, items per CPU second of this process): the machine is shared."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - wall), n / max(1e-9, time.process_time() - cpu)


def perturbed_predictions(doc: dict, rng: np.random.Generator) -> dict[str, list[dict]]:
    """Per pair id: COCO-results predictions close to (but not equal to) the pair's GT."""
    size = {e["id"]: (e["height"], e["width"]) for e in doc["images"]}
    by_pair: dict[str, list[dict]] = {pid: [] for pid in size}
    anns_by_pair: dict[str, list[dict]] = {}
    for ann in doc["annotations"]:
        anns_by_pair.setdefault(ann["image_id"], []).append(ann)
    pool = doc["annotations"]
    for pid, (h, w) in size.items():
        anns = anns_by_pair.get(pid, [])
        if not anns and rng.random() < 0.15:  # a false positive on a negative pair
            anns = [pool[int(rng.integers(len(pool)))]]
        for ann in anns:
            if rng.random() < 0.1:
                continue  # missed instance
            gt = instance_to_mask(Instance(rle=ann["segmentation"], bbox=[0, 0, 1, 1]))
            inst = mask_to_instance(boundary_noise(gt, rng, 2), source="model")
            x, y, bw, bh = inst.bbox
            by_pair[pid].append({"category_id": 1, "segmentation": inst.rle,
                                 "bbox": [x / w, y / h, bw / w, bh / h], "score": float(rng.uniform(0.3, 1.0))})
    return by_pair


def replicate(doc: dict, preds: dict[str, list[dict]], n_pairs: int) -> tuple[dict, list[dict]]:
    """Copies of the document's pairs (and their predictions) under new ids, up to n_pairs pairs."""
    anns_by_pair: dict[str, list[dict]] = {}
    for ann in doc["annotations"]:
        anns_by_pair.setdefault(ann["image_id"], []).append(ann)
    images, annotations, predictions = [], [], []
    copy = 0
    while len(images) < n_pairs:
        for entry in doc["images"]:
            if len(images) >= n_pairs:
                break
            pid = f"{entry['id']}-{copy}"
            images.append({**entry, "id": pid})
            for ann in anns_by_pair.get(entry["id"], []):
                annotations.append({**ann, "id": len(annotations) + 1, "image_id": pid})
            predictions.extend({**p, "image_id": pid} for p in preds[entry["id"]])
        copy += 1
    return {**doc, "images": images, "annotations": annotations}, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images per generator measurement")
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs for the evaluator measurement")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    from model.metrics import evaluate

    n = args.images
    render_scene(0, 0, image_size=args.image_size)  # warm caches
    render_base = _rate(n, lambda: [render_scene(1, i, "base", args.image_size) for i in range(n)])
    render_night = _rate(n, lambda: [render_scene(1, i, "night", args.image_size) for i in range(n)])
    samples: list = []
    samples_rate = _rate(n, lambda: samples.extend(generate_samples(n, 1, "base", args.image_size, 16)))
    frames, videos = 24, max(1, n // 24)
    video_rate = _rate(frames * videos, lambda: [generate_video(1, i, n_frames=frames, image_size=args.image_size)
                                                 for i in range(videos)])

    pairs = [p for s in samples for p in s.pairs]
    metas = {s.key: ImageMeta(file_name=f"{s.key}.png", height=s.height, width=s.width) for s in samples}
    doc = to_saco(pairs, metas)
    preds = perturbed_predictions(doc, np.random.default_rng(0))
    big_doc, big_preds = replicate(doc, preds, args.pairs)
    n_pairs = len(big_doc["images"])
    result: dict = {}
    eval_rate = _rate(n_pairs, lambda: result.update(evaluate([big_doc], big_preds, iou_type="segm")))
    eval_s = n_pairs / eval_rate[0]

    print(f"generator: {n} images of {args.image_size}px; {len(pairs)} pairs "
          f"({sum(p.label == 'positive' for p in pairs)} positive), {len(samples[0].pairs)} on the first image")
    print(f"evaluator: {n_pairs} pairs, {len(big_doc['annotations'])} GT masks, {len(big_preds)} predictions; "
          f"cgF1 {result['cgF1']:.1f} pmF1 {result['pmF1']:.3f} IL_MCC {result['IL_MCC']:.3f}")
    print("                     wall-clock /s   per CPU-second")
    for name, (wall, cpu), unit in (("render base", render_base, "images"), ("render night", render_night, "images"),
                                    ("samples png+rle+np", samples_rate, "images"), ("video", video_rate, "frames"),
                                    ("evaluate", eval_rate, "pairs")):
        print(f"{name:20s} {wall:10.1f}   {cpu:10.1f}   {unit}")
    print(f"samples / render (CPU): {samples_rate[1] / render_base[1]:.2f}; evaluate: {eval_s:.1f} s wall for "
          f"{n_pairs} pairs -> 100k pairs in {100_000 / eval_rate[0]:.1f} s wall "
          f"({100_000 / eval_rate[1]:.1f} s CPU), target < 60 s {'met' if 100_000 / eval_rate[0] < 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
