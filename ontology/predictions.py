"""What the ontology layer needs from the SAM 3 predictor, behind a small protocol.

The model-in-the-loop proposer and the adversarial hard-negative check only need, for one image
and many phrases, each phrase's presence, its best instance score and its instance masks. Any
object with `predict(items)` in the shape of `model.predictor.Predictor` works: items are
`(image_id, image, phrases)`, results have `.pairs`, each with `.phrase`, `.presence` and
`.instances` (each with `.score` and a COCO `.rle`). `score_phrases` runs one image with all its
phrases in one call, so the predictor computes the vision features once (vision reuse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from storage.masks import decode_rle


class PredictorLike(Protocol):
    def predict(self, items: Sequence[Any]) -> list[Any]: ...


@dataclass
class PhraseScore:
    phrase: str
    presence: float
    best_score: float  # highest instance score (0 when no instance passed the predictor's threshold)
    rles: list[dict] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def n_predictions(self) -> int:
        return len(self.rles)

    def masks(self) -> list[np.ndarray]:
        return [decode_rle(r).astype(bool) for r in self.rles]


class PredictionError(RuntimeError):
    """The predictor could not process an image."""


def score_phrases(predictor: PredictorLike, image_id: Any, image: Any, phrases: Sequence[str],
                  min_score: float = 0.0) -> dict[str, PhraseScore]:
    """Presence, best score and masks (instances scoring >= `min_score`) of each phrase on one image."""
    if not phrases:
        return {}
    (result,) = predictor.predict([(image_id, image, list(phrases))])
    if getattr(result, "error", None):
        raise PredictionError(f"predictor failed on {image_id!r}: {result.error}")
    out: dict[str, PhraseScore] = {}
    for pair in result.pairs:
        insts = [i for i in pair.instances if i.score >= min_score and i.rle is not None]
        out[pair.phrase] = PhraseScore(
            pair.phrase,
            float(pair.presence),
            max((float(i.score) for i in insts), default=0.0),
            [i.rle for i in insts],
            [float(i.score) for i in insts],
        )
    return out
