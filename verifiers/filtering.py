"""Using verifiers as filters on model output (the paper's cgF1 ablation, reference/sam3.md section 2).

Predictions are COCO results (`image_id` = pair id, `score`, mask, box), as `model.gold_eval`
writes them. SAM 3's score is sigmoid(query logit) x presence, so:
- `rescore_presence(preds, model_presence, ev_presence)` replaces the model's presence by the EV
  presence score (1 - P(accept | no masks)) of the pair: score / model presence x EV presence;
- `drop_rejected(preds, p_accept, threshold)` removes the masks MV does not accept
  (P(accept) < threshold; the list is aligned with `preds`).
Pairs without an EV score keep the model's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def rescore_presence(
    preds: Sequence[dict], model_presence: Mapping, ev_presence: Mapping
) -> list[dict]:
    out = []
    for p in preds:
        pid = p["image_id"]
        if pid in ev_presence and model_presence.get(pid, 0) > 0:
            score = min(1.0, p["score"] / model_presence[pid] * ev_presence[pid])
            p = {**p, "score": score}
        out.append(p)
    return out


def drop_rejected(
    preds: Sequence[dict], p_accept: Sequence[float | None], threshold: float = 0.5
) -> list[dict]:
    if len(preds) != len(p_accept):
        raise ValueError(f"{len(preds)} predictions but {len(p_accept)} MV probabilities")
    return [p for p, a in zip(preds, p_accept) if a is None or a >= threshold]
