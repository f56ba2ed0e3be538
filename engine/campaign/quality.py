"""Label quality of a phase's produced pairs against exact ground truth (shapes world only).

The accepted pairs (positive and negative; dropped ones are counted apart) are taken as predictions
with score 1 and scored like a model against the world's exact GT of the same (image, phrase)
pairs (`model.metrics.evaluate`: cgF1, pmF1, IL_MCC); the pair-level label accuracy (positive vs
negative right) is reported too, overall and for the pairs AI decided alone. A source without exact
ground truth has no such figures: `label_quality` says so instead of guessing.

Crowd regions count as ordinary instances here: the cgF1 evaluator ignores crowd GT (a pair whose
only GT is a crowd is a negative to it), which would score a correct crowd label as a false
positive, so perfect labels would not reach IL_MCC 1. A label is right when it matches the world.
"""

from __future__ import annotations

from engine.campaign.exports import final_pairs
from storage.masks import mask_to_instance
from storage.records import Pair
from storage.saco import ImageMeta, to_saco

NEEDS_GT = "needs exact ground truth (the shapes world); this source has none"


def label_quality(cfg, layout, phase: int, units) -> dict:
    if cfg.source.kind != "shapes":
        return {"skipped": NEEDS_GT}
    return score_labels(final_pairs(layout, phase, units))


def score_labels(pairs) -> dict:
    """Score produced shapes-world pairs (positive / negative / dropped) against the world's GT."""
    from engine.world.phrases import PhraseParseError
    from engine.world.samples import WorldOracle
    from model.metrics import evaluate

    oracle = WorldOracle()
    gt_pairs, preds, images = [], [], {}
    right = n = ai_right = ai_n = 0
    ungroundable = dropped = 0
    for pair in pairs:
        if pair.label == "dropped":
            dropped += 1
            continue
        try:
            gts = oracle.instances(pair.media_id, pair.phrase)
        except (PhraseParseError, ValueError):
            ungroundable += 1
            continue
        h, w = oracle.image_size(pair.media_id)
        images[pair.media_id] = ImageMeta(file_name=f"{pair.media_id}.png", height=h, width=w)
        gt_label = "positive" if gts else "negative"
        gt_pairs.append(Pair(media_id=pair.media_id, phrase=pair.phrase, label=gt_label,
                             instances=[mask_to_instance(g.mask, source="gt") for g in gts]))
        n += 1
        right += gt_label == pair.label
        if pair.lineage.source == "ai":
            ai_n += 1
            ai_right += gt_label == pair.label
        for inst in pair.instances:
            x, y, bw, bh = inst.bbox
            preds.append({"image_id": pair.pair_id, "category_id": 1, "score": 1.0, "segmentation": inst.rle,
                          "bbox": [x / w, y / h, bw / w, bh / h]})
    if not gt_pairs:
        return {"pairs": 0, "dropped": dropped}
    m = evaluate(to_saco(gt_pairs, images), preds, iou_type="segm")
    return {"pairs": n, "dropped": dropped, "ungroundable": ungroundable,
            "cgF1": round(m["cgF1"], 2), "pmF1": round(m["pmF1"], 4), "IL_MCC": round(m["IL_MCC"], 4),
            "label_accuracy": round(right / n, 4),
            "ai_decided_pairs": ai_n, "ai_label_accuracy": round(ai_right / ai_n, 4) if ai_n else None}
