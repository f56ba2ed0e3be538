"""PCS metrics (cgF1, pmF1, IL_MCC, ...) of predictions against SA-Co gold GT, as SAM 3 defines.

    from model.metrics import evaluate, load_gt, load_predictions
    result = evaluate([load_gt("gold_a.json")], load_predictions("preds.json"), iou_type="segm")
    result["cgF1"]  # 0-100; result["pmF1"], result["IL_MCC"] on 0-1

`cgf1` owns the definition (its docstring lists every rule checked against the official
evaluator), `inputs` reads and validates the files, `rle` checks compressed RLE masks in bulk.
"""

from model.metrics.cgf1 import IOU_THRESHOLDS, SCORE_GATE, evaluate
from model.metrics.inputs import MetricsInputError, load_gt, load_predictions

__all__ = ["IOU_THRESHOLDS", "SCORE_GATE", "MetricsInputError", "evaluate", "load_gt",
           "load_predictions"]
