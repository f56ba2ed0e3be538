"""Score calibration: logit offsets that put a trained model's operating point at the 0.5 score gate.

cgF1 counts a prediction only at score >= 0.5 (score = sigmoid(query logit) x sigmoid(presence
logit)). A small model trained for minutes often localises an instance well while its query score
sits at 0.2-0.4, or calls absent phrases present. `calibrate_scores` picks two offsets, one added to
the query logits and one to the presence logits, on a calibration set that is neither train nor
gold data, by a coordinate search over a small grid maximising cgF1 there; they are saved with the
model (`sam3_engine.json`: `query_logit_bias`, `presence_logit_bias`) and applied by the predictor.
This is a monotone re-scaling of each score (temperature/bias scaling), not more training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

QUERY_GRID = (-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
PRESENCE_GRID = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0)


def calibrate_scores(loaded, gold: dict, images, query_grid: Sequence[float] = QUERY_GRID,
                     presence_grid: Sequence[float] = PRESENCE_GRID,
                     evaluate: Callable | None = None) -> dict:
    """Set `loaded.extra`'s score offsets to the best on `gold` (query offset first, then presence);
    returns {"query_logit_bias", "presence_logit_bias", "cgF1", "tried": [(q, p, cgF1), ...]}."""
    if evaluate is None:
        from model.gold_eval import evaluate_gold

        def evaluate(model):
            return evaluate_gold(model, gold, images)["cgF1"]

    tried: list[tuple[float, float, float]] = []

    def score(q: float, p: float) -> float:
        loaded.extra.update(query_logit_bias=q, presence_logit_bias=p)
        value = float(evaluate(loaded))
        tried.append((q, p, value))
        return value

    best_q = max(query_grid, key=lambda q: (score(q, 0.0), -abs(q)))
    best_p = max(presence_grid, key=lambda p: (score(best_q, p), -abs(p)))
    best = max(v for q, p, v in tried if q == best_q and p == best_p)
    loaded.extra.update(query_logit_bias=best_q, presence_logit_bias=best_p)
    return {"query_logit_bias": best_q, "presence_logit_bias": best_p, "cgF1": best, "tried": tried}
