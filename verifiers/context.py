"""What the learned verifiers see of the model: per-pair predictor outputs (`PairContext`).

`PairContext` is one (image, phrase) pair as `model.predictor` predicts it: presence, every query's
score, the instances kept at the predictor's score threshold (COCO RLE, box, area, semantic
agreement) and the semantic summary; plus, when produced by `FeaturePredictor`, each query's *mask
stability* (SAM's stability score: area of the mask-logit region above +offset over the region above
-offset, i.e. the IoU of the masks at two thresholds) and the low-resolution semantic-segmentation
probability map, which EV needs to measure the semantic area the *accepted* masks leave unexplained.

`FeaturePredictor` is `model.predictor.Predictor` with one extension point used: after its own
post-processing of a batch it keeps those two extras per pair (`_postprocess` is overridden and
calls the parent first; a parent without it simply yields contexts without extras, whose features
are then missing values). `ContextProvider(loaded)` runs it over (media id, image, phrases) items,
one vision pass per image, and caches contexts by (media id, phrase); `StaticContexts` serves
contexts computed earlier (e.g. by the engine's mask-proposal stage).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model.predictor import PairPrediction, Predictor
from storage.masks import decode_rle

STABILITY_OFFSET = 1.0  # logit units, as SAM's stability_score_offset


@dataclass
class PredInstance:
    score: float
    query: int
    bbox: list[float]  # pixel xywh
    area: int
    semantic_agreement: float
    rle: dict | None
    stability: float = float("nan")
    _mask: np.ndarray | None = field(default=None, repr=False)

    def mask(self) -> np.ndarray:
        if self._mask is None:
            if self.rle is None:
                raise ValueError("instance has no mask (predictor ran with encode_rle=False)")
            self._mask = decode_rle(self.rle)
        return self._mask


@dataclass
class PairContext:
    height: int
    width: int
    presence: float
    scores: np.ndarray
    instances: list[PredInstance]
    semantic: dict[str, float] = field(default_factory=dict)
    semantic_map: np.ndarray | None = None  # (h, w) probabilities at the mask head's resolution
    stability: np.ndarray | None = None  # (Q,)
    model_version: str | None = None

    @classmethod
    def from_prediction(
        cls,
        pred: PairPrediction,
        height: int,
        width: int,
        extras: tuple | None = None,
        model_version: str | None = None,
    ) -> PairContext:
        stability, sem_map = extras if extras is not None else (None, None)
        insts = [
            PredInstance(
                i.score,
                i.query,
                list(i.bbox),
                i.area,
                i.semantic_agreement,
                i.rle,
                float(stability[i.query]) if stability is not None else float("nan"),
            )
            for i in pred.instances
        ]
        return cls(
            height,
            width,
            float(pred.presence),
            np.asarray(pred.scores, dtype=np.float32),
            insts,
            dict(pred.semantic),
            None if sem_map is None else np.asarray(sem_map, dtype=np.float32),
            None if stability is None else np.asarray(stability, dtype=np.float32),
            model_version,
        )


class FeaturePredictor(Predictor):
    """`Predictor` that also keeps per-query mask stability and the semantic map of each pair."""

    def __init__(self, *args, stability_offset: float = STABILITY_OFFSET, **kwargs):
        super().__init__(*args, **kwargs)
        self.stability_offset = stability_offset
        self.extras: dict[tuple[Any, int], tuple[np.ndarray, np.ndarray]] = {}

    def _postprocess(self, batch, out, slots, results) -> None:
        super()._postprocess(batch, out, slots, results)
        logits = out.pred_masks.float()
        hi = (logits > self.stability_offset).sum(dim=(2, 3)).float()
        lo = (logits > -self.stability_offset).sum(dim=(2, 3)).float()
        stab = torch.where(lo > 0, hi / lo.clamp(min=1), torch.zeros_like(hi)).cpu().numpy()
        sem = out.semantic_seg[:, 0].float().sigmoid().cpu().numpy().astype(np.float16)
        for b, (s, k, _p) in enumerate(batch):
            self.extras[(results[slots[s]].image_id, k)] = (stab[b], sem[b])


class ContextProvider:
    """Predictor outputs for (media id, phrase) pairs, computed in batches and cached (LRU)."""

    def __init__(
        self,
        loaded: Any,
        *,
        score_threshold: float = 0.3,
        batch_size: int = 32,
        image_batch_size: int = 8,
        model_version: str | None = None,
        cache_size: int = 20000,
    ):
        self.predictor = FeaturePredictor(
            loaded,
            batch_size=batch_size,
            image_batch_size=image_batch_size,
            score_threshold=score_threshold,
            prefetch=False,
        )
        self.model_version = (
            model_version or getattr(loaded, "source", None) or getattr(loaded, "preset", None)
        )
        self._cache: OrderedDict[tuple[str, str], PairContext] = OrderedDict()
        self._cache_size = cache_size
        self.errors: dict[str, str] = {}

    def contexts(
        self, items: Sequence[tuple[str, Any, Sequence[str]]]
    ) -> dict[tuple[str, str], PairContext]:
        """Contexts of every (media id, phrase) of items `(media_id, image, phrases)`.

        An image that cannot be decoded is left out (its reason in `self.errors[media_id]`).
        """
        out: dict[tuple[str, str], PairContext] = {}
        merged: dict[str, tuple[Any, list[str]]] = {}
        for media_id, image, phrases in items:  # one entry per image: extras are keyed by image
            merged.setdefault(media_id, (image, []))[1].extend(phrases)
        todo = []
        for media_id, (image, phrases) in merged.items():
            missing = []
            for p in dict.fromkeys(phrases):
                hit = self._cache.get((media_id, p))
                if hit is None:
                    missing.append(p)
                else:
                    out[(media_id, p)] = hit
            if missing:
                todo.append((media_id, image, missing))
        if not todo:
            return out
        fp = self.predictor
        for res in fp.predict_iter(todo):
            if res.error:
                self.errors[res.image_id] = res.error
                continue
            for pair in res.pairs:
                extras = fp.extras.pop((res.image_id, pair.prompt_index), None)
                ctx = PairContext.from_prediction(
                    pair, res.height, res.width, extras, self.model_version
                )
                out[(res.image_id, pair.phrase)] = ctx
                self._cache[(res.image_id, pair.phrase)] = ctx
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out


class StaticContexts:
    """A context provider over precomputed contexts {(media id, phrase): PairContext} (no model run)."""

    def __init__(
        self, contexts: dict[tuple[str, str], PairContext], model_version: str | None = None
    ):
        self._contexts = contexts
        self.model_version = model_version
        self.errors: dict[str, str] = {}

    def contexts(
        self, items: Sequence[tuple[str, Any, Sequence[str]]]
    ) -> dict[tuple[str, str], PairContext]:
        return {
            (m, p): self._contexts[(m, p)]
            for m, _img, phrases in items
            for p in phrases
            if (m, p) in self._contexts
        }
