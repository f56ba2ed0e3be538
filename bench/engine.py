"""Engine benchmark: orchestration overhead, and the cost of a campaign's bookkeeping as it grows.

1. Pipeline vs predictor alone (tiny preset, CPU): a human-verification phase over N shapes-world
   images (plan -> propose -> annotate -> simulated humans -> consolidate, inline executor) against
   `model.predictor.Predictor` alone on the same (image, phrase) pairs; pairs/s of both and the ratio.
2. Bookkeeping at 10k, 100k and 1M pairs with a null model (no masks, a fixed EV verdict, SYN routing):
   the real steps (state store, work units, markers, stage parts, routing, decision log, final pairs,
   streamed SA-Co export, shards) with the model and verifiers replaced by constants; each size runs in
   its own process and reports wall time and peak RSS. Cost should grow linearly (flat us/pair) and 1M
   pairs must fit in 2 GB.

    python bench/engine.py [--images 8] [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PHRASES = ["triangle", "red triangle", "square", "blue square", "circle", "green circle", "star", "hexagon",
           "striped shape", "small shape", "large circle", "dotted square", "polygon", "round shape",
           "yellow star", "cross"]


def _config(root: str, **over) -> dict:
    cfg = {"name": "bench", "root": root, "proposer": {"kind": "world", "positives": 4, "negatives": 12},
           "retrain": {"enabled": False, "gold_images": 0}, "verifiers": {"embedder": "hashing"},
           "phases": [{"index": 1, "mode": "human", "domain": "base", "images": 8, "per_unit": 4}]}
    cfg.update(over)
    return cfg


def pipeline_vs_predictor(images: int) -> dict:
    import torch

    from engine.campaign import steps
    from engine.campaign.config import parse_config
    from engine.campaign.stages import by_media
    from engine.campaign.steps import Campaign
    from model.predictor import Predictor

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        cfg = parse_config(_config(tmp, phases=[{"index": 1, "mode": "human", "domain": "base", "images": images,
                                                 "per_unit": 4}]))
        c = Campaign(cfg)
        steps._start(c)
        t0 = time.perf_counter()
        steps._plan(c, 1)
        steps._propose(c, 1)
        steps._annotate(c, 1)
        while not steps._await(c, 1)["done"]:
            pass
        out = steps._consolidate(c, 1)
        pipeline_s = time.perf_counter() - t0
        pairs = out["pairs"]
        rows = [r for u in (f"u{i:05d}" for i in range((images + 3) // 4)) for r in c.layout.read_stage(1, "plan", u)]
        items = [(m, c.layout.store.read_bytes(rs[0]["uri"]), [r["phrase"] for r in rs])
                 for m, rs in by_media(rows).items()]
        from engine.campaign.models import load_model_ref

        predictor = Predictor(load_model_ref(cfg, None), batch_size=cfg.model.batch_size)
        t0 = time.perf_counter()
        predictor.predict(items)
        predictor_s = time.perf_counter() - t0
    return {"pairs": pairs, "pipeline_pairs_per_s": round(pairs / pipeline_s, 1),
            "predictor_pairs_per_s": round(pairs / predictor_s, 1),
            "overhead_ratio": round(pipeline_s / predictor_s, 2)}


def bookkeeping(n_pairs: int) -> dict:
    """Run in a fresh process: the real steps with a null model and null verifiers."""
    import io

    from PIL import Image

    from engine.campaign import steps, verifier_ops
    from engine.campaign.config import parse_config
    from engine.campaign.executors import InlineExecutor, context_of, desk_of
    from engine.campaign.layout import Layout
    from engine.campaign.stages import propose_unit, route_unit
    from storage.records import pair_id

    class NullProvider:
        errors: dict = {}  # noqa: RUF012 - never written

        def contexts(self, items):
            return {}

    ev = {"task": "ev", "probs": {"accept": 0.9, "reject": 0.1}, "verifier": "null/ev", "presence": 0.1}

    class NullExecutor(InlineExecutor):
        def __init__(self, png_uri):
            self.png = png_uri

        def plan(self, spec, units):
            ctx = context_of(spec)
            for unit, items in units.items():
                rows = [{"pair_id": pair_id(i.media_id, p), "media_id": i.media_id, "phrase": p, "uri": self.png,
                         "width": 32, "height": 32, "domain": i.domain, "origin": "null"}
                        for i in items for p in PHRASES]
                ctx.layout.write_records(ctx.layout.part(ctx.phase, "plan", unit), rows)
                ctx.layout.mark(ctx.layout.unit_marker(ctx.phase, "plan", unit), {"pairs": len(rows)})
                yield {"unit": unit, "pairs": len(rows)}

        def propose(self, spec, units):
            ctx = context_of(spec)
            for unit in units:
                yield propose_unit(ctx, unit, provider=NullProvider())

        def annotate(self, spec, units):
            ctx, desk = context_of(spec), desk_of(spec)
            for unit in units:
                verdicts = {r["pair_id"]: {"mv": [], "ev": ev} for r in ctx.layout.read_stage(ctx.phase, "propose", unit)}
                yield route_unit(ctx, unit, verdicts, desk)

    verifier_ops.phase_verifiers = lambda *a, **k: {}
    images = n_pairs // len(PHRASES)
    with tempfile.TemporaryDirectory(prefix="bench-books-") as tmp:
        cfg = parse_config(_config(tmp, humans={"backend": "none"}, verifiers={"init": tmp},
                                   source={"kind": "shapes", "image_size": 32},
                                   phases=[{"index": 1, "mode": "syn", "domain": "base", "images": images,
                                            "per_unit": 256}]))
        buf = io.BytesIO()
        Image.new("RGB", (32, 32)).save(buf, format="PNG")
        layout = Layout(cfg)
        png = layout.store.write_bytes(layout.media("base", "null"), buf.getvalue())
        c = steps.Campaign(cfg)
        c.__dict__["executor"] = NullExecutor(png)
        c.layout.mark(c.layout.path("start.json"), {})
        c.state.upsert_campaign(cfg.name)
        c.state.upsert_phase(cfg.name, 1)
        from engine.campaign.models import ensure_initial_model

        ensure_initial_model(cfg)  # a registered version for lineage; the null provider never runs it
        t0 = time.perf_counter()
        times = {}
        for name in ("plan", "propose", "annotate", "await_humans", "consolidate"):
            t = time.perf_counter()
            out = steps.PHASE_STEPS[name](c, 1)
            times[name] = round(time.perf_counter() - t, 2)
        seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pairs": out["pairs"], "seconds": round(seconds, 2), "us_per_pair": round(1e6 * seconds / out["pairs"], 1),
            "peak_rss_mb": round(peak_mb, 1), "steps_s": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8, help="images for the pipeline-vs-predictor run")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="bookkeeping sizes (pairs)")
    ap.add_argument("--bookkeeping", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bookkeeping:
        print(json.dumps(bookkeeping(args.bookkeeping)))
        return
    r = pipeline_vs_predictor(args.images)
    print(f"pipeline vs predictor alone ({r['pairs']} pairs, tiny preset, CPU, inline executor, simulated humans):")
    print(f"  pipeline  {r['pipeline_pairs_per_s']:8.1f} pairs/s")
    print(f"  predictor {r['predictor_pairs_per_s']:8.1f} pairs/s")
    print(f"  orchestration overhead: pipeline time / predictor time = {r['overhead_ratio']}x")
    print("bookkeeping with a null model (own process per size):")
    print(f"  {'pairs':>9} {'seconds':>9} {'us/pair':>9} {'peak RSS MB':>12}  per step (s)")
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--bookkeeping", str(n)], check=False, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            raise SystemExit(f"bookkeeping at {n} pairs failed")
        b = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(b)
        print(f"  {b['pairs']:>9} {b['seconds']:>9} {b['us_per_pair']:>9} {b['peak_rss_mb']:>12}  {b['steps_s']}")
    if len(rows) > 1:
        print(f"  growth: us/pair at the largest size / at the smallest = "
              f"{rows[-1]['us_per_pair'] / rows[0]['us_per_pair']:.2f} (1.0 = linear)")
        print(f"  largest run fits in 2 GB: {rows[-1]['peak_rss_mb'] < 2048}")


if __name__ == "__main__":
    main()
