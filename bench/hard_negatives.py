"""Hard-negative mining against a real model: on what share of the mined phrases does the model fire?

    python bench/hard_negatives.py [--model base|DIR|tiny] [--images 12] [--threads 1]

On shapes-world images (seed 7, never trained on), every positive phrase with its exact GT masks goes
to `ontology.hard_negatives.HardNegativeMiner` with the model's predictor. The miner proposes absent
relatives of the positives ("blue triangle" beside a red one), filters any that may be present, and
runs the model on the rest. Printed side by side for the model and for a fresh tiny preset: the share
of candidates on which the model fires (a prediction at score >= 0.5) and the share it confuses with
a present positive (a prediction overlapping that positive's GT at IoU >= 0.5: the kept hard negatives).
A model that fires on none makes hard-negative mining empty; the world checks every candidate is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEED = 7


def mine(loaded, images: int) -> dict:
    from engine.world.samples import WorldOracle, generate_samples
    from engine.world.vocab import world_graph
    from model.predictor import Predictor
    from ontology.hard_negatives import HardNegativeMiner

    oracle = WorldOracle()
    miner = HardNegativeMiner(world_graph(), {"per_image": 1000, "max_candidates": 40},
                              predictor=Predictor(loaded, batch_size=16))
    checked = fired = confused = present = 0
    for s in generate_samples(images, SEED, negatives_per_image=0):
        positives = {p.phrase: [i.mask for i in oracle.instances(s.key, p.phrase) if not i.iscrowd]
                     for p in s.pairs if p.label == "positive"}
        for d in miner.mine(s.key, s.image, positives, domain="base").decisions:
            if d.reason.startswith(("error", "unchecked", "over_budget")):
                continue
            checked += 1
            fired += d.n_predictions > 0
            confused += d.kept
            present += bool(oracle.objects(s.key, d.candidate.phrase))
    return {"checked": checked, "fires": fired / max(1, checked), "confusable": confused / max(1, checked),
            "actually_present": present}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="base", help="base (model/weights/tiny-base), a model folder, or tiny")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from engine.base_model import base_model_dir
    from model.presets import build_tiny, load_model

    torch.set_num_threads(args.threads)
    model = load_model(str(base_model_dir()) if args.model == "base" else args.model)
    results = {"model": mine(model, args.images), "fresh tiny": mine(build_tiny(seed=0), args.images)}
    for name, r in results.items():
        print(f"{name:>10}: {r['checked']} mined candidates checked; model fires on {100 * r['fires']:.1f} %, "
              f"confuses {100 * r['confusable']:.1f} % with a present positive (kept as hard negatives); "
              f"candidates actually present: {r['actually_present']}")
    m = results["model"]
    print(f"hard-negative mining: the model fires on {100 * m['fires']:.1f} % of mined phrases "
          f"({100 * m['confusable']:.1f} % confusable) vs {100 * results['fresh tiny']['fires']:.1f} % for a fresh model")
    return results


if __name__ == "__main__":
    main()
