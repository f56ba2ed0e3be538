"""The learned verifier backend (CPU default): gradient boosting over predictor-output features.

- `FeatureBuilder` turns (media id, phrase, masks[, image, context]) items into feature rows: it
  resolves images (the request's, else `media(media_id)`), runs the `ContextProvider` once per
  image for pairs without a context, and appends the phrase features.
- `TaskModel` is one task's classifier: scikit-learn `HistGradientBoostingClassifier` over those
  rows (missing values allowed), trained on every rater's vote, with *temperature scaling* fitted on
  a held-out 20 % (split by media item) so its probabilities are calibrated; the final model is
  refitted on all examples and keeps that temperature. Labels never seen in training get
  probability 0.
- `LearnedVerifier` is the `Verifier` of one task: batched, a version id on every verdict; a request
  whose image or mask cannot be read comes back as an error verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from storage.masks import instance_to_mask
from verifiers.base import Request, Verdict, check_requests, error_verdict, make_verdict
from verifiers.embedding import PhraseFeatures
from verifiers.features import EV_FEATURES, MV_FEATURES, ev_features, image_gradient, mv_features
from verifiers.labels import labels_for

DEFAULT_PARAMS = {
    "max_iter": 200,
    "learning_rate": 0.06,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 12,
    "l2_regularization": 1.0,
}


@dataclass
class Item:
    media_id: str
    phrase: str
    masks: list  # storage.records.Instance
    image: Any = None
    context: Any = None


class FeatureBuilder:
    """Feature rows for MV / EV items (see module docstring)."""

    def __init__(
        self, phrases: PhraseFeatures, contexts=None, media: Callable[[str], Any] | None = None
    ):
        self.phrases, self.contexts, self.media = phrases, contexts, media

    def names(self, task: str) -> list[str]:
        return (MV_FEATURES if task == "mv" else EV_FEATURES) + self.phrases.names

    def _images(self, items: Sequence[Item]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        from model.preprocess import ImageDecodeError, load_image

        images, errors = {}, {}
        for it in items:
            if it.media_id in images or it.media_id in errors:
                continue
            src = (
                it.image
                if it.image is not None
                else (self.media(it.media_id) if self.media else None)
            )
            if src is None:
                continue
            try:
                images[it.media_id] = load_image(src, it.media_id)
            except (ImageDecodeError, OSError, ValueError) as err:
                errors[it.media_id] = str(err)
        return images, errors

    def rows(self, task: str, items: Sequence[Item]) -> tuple[np.ndarray, dict[int, str]]:
        """(N, F) float32 rows (NaN where unknown) and {item index: error} for items that failed."""
        images, img_errors = self._images(items)
        ctx = {}
        if self.contexts is not None:
            need: dict[str, list[str]] = {}
            for it in items:
                if it.context is None and it.media_id in images:
                    need.setdefault(it.media_id, []).append(it.phrase)
            if need:
                ctx = self.contexts.contexts([(m, images[m], ps) for m, ps in need.items()])
        grads = {m: image_gradient(img) for m, img in images.items()} if task == "mv" else {}
        width = len(MV_FEATURES if task == "mv" else EV_FEATURES)
        out = np.full((len(items), width), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        for i, it in enumerate(items):
            if it.media_id in img_errors:
                errors[i] = f"image {it.media_id!r}: {img_errors[it.media_id]}"
                continue
            c = it.context if it.context is not None else ctx.get((it.media_id, it.phrase))
            try:
                masks = [instance_to_mask(m) for m in it.masks]
                img = images.get(it.media_id)
                size = img.shape[:2] if img is not None else (c.height, c.width) if c else None
                for m in masks:
                    if size is not None and m.shape != tuple(size):
                        raise ValueError(f"mask size {m.shape} does not match image {tuple(size)}")
                if task == "mv":
                    if len(masks) != 1:
                        raise ValueError(f"an MV item needs one mask, got {len(masks)}")
                    out[i] = mv_features(masks[0], it.masks[0].rle, c, img, grads.get(it.media_id))
                else:
                    out[i] = ev_features(masks, [m.rle for m in it.masks], c)
            except (ValueError, KeyError, TypeError) as err:
                errors[i] = str(err)
        return np.hstack([out, self.phrases.transform([it.phrase for it in items])]), errors


def _fit_clf(params: dict, seed: int, X: np.ndarray, y: np.ndarray):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    empty = np.isnan(X).all(axis=0)
    if empty.any():  # scikit-learn cannot bin a feature that never has a value: make it constant
        X = X.copy()
        X[:, empty] = 0.0
    with threadpool_limits(
        limits=1, user_api="openmp"
    ):  # OpenMP on small data: ~8x slower on shared cores
        return HistGradientBoostingClassifier(random_state=seed, **params).fit(X, y)


def _proba(clf, X: np.ndarray) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return clf.predict_proba(X)


def _softmax_t(logp: np.ndarray, t: float) -> np.ndarray:
    z = logp / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class TaskModel:
    """One task's classifier: features -> calibrated probabilities over the full label set."""

    task: str
    feature_names: list[str]
    classes: list[str]
    clf: Any = None  # None when only one class was seen
    temperature: float = 1.0
    metrics: dict = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        task: str,
        X: np.ndarray,
        y: Sequence[str],
        groups: Sequence[str],
        feature_names: list[str],
        seed: int = 0,
        params: dict | None = None,
        holdout: float = 0.2,
    ) -> TaskModel:
        order = labels_for(task)
        bad = sorted(set(y) - set(order))
        if bad:
            raise ValueError(f"{task} labels {bad} are not in {order}")
        classes = [lab for lab in order if lab in set(y)]
        if not classes:
            raise ValueError(f"no {task} examples to train on")
        model = cls(task, list(feature_names), classes, metrics={"examples": len(y)})
        if len(classes) == 1:
            return model
        params = {**DEFAULT_PARAMS, **(params or {})}
        y_idx = np.array([classes.index(v) for v in y])
        groups = np.asarray(groups)
        uniq = np.unique(groups)
        rng = np.random.default_rng(seed)
        held = (
            set(rng.choice(uniq, size=max(1, round(holdout * len(uniq))), replace=False))
            if len(uniq) > 4
            else set()
        )
        val = np.isin(groups, list(held))
        if held and len(np.unique(y_idx[~val])) == len(classes) and val.sum() >= 20:
            clf = _fit_clf(params, seed, X[~val], y_idx[~val])
            logp = np.log(np.clip(_proba(clf, X[val]), 1e-9, 1.0))
            yv = y_idx[val]

            def nll(log_t: float) -> float:
                return -float(
                    np.log(_softmax_t(logp, np.exp(log_t))[np.arange(len(yv)), yv] + 1e-12).mean()
                )

            res = minimize_scalar(nll, bounds=(-2.0, 2.0), method="bounded")
            model.temperature = float(np.exp(res.x))
            model.metrics.update(
                holdout_examples=int(val.sum()),
                holdout_nll_raw=round(nll(0.0), 4),
                holdout_nll_calibrated=round(float(res.fun), 4),
                holdout_accuracy=round(float((logp.argmax(1) == yv).mean()), 4),
            )
        model.clf = _fit_clf(params, seed, X, y_idx)
        return model

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, len(labels)) probabilities over `labels_for(task)` (unseen labels: 0)."""
        order = labels_for(self.task)
        out = np.zeros((len(X), len(order)))
        cols = [order.index(c) for c in self.classes]
        if self.clf is None:
            out[:, cols[0]] = 1.0
            return out
        if X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"{self.task} model expects {len(self.feature_names)} features, got {X.shape[1]}"
            )
        logp = np.log(np.clip(_proba(self.clf, X), 1e-9, 1.0))
        out[:, cols] = _softmax_t(logp, self.temperature)
        return out


class LearnedVerifier:
    """A `Verifier` of one task backed by a `TaskModel` (see module docstring)."""

    backend = "learned"

    def __init__(self, model: TaskModel, builder: FeatureBuilder, version: str):
        self.task, self.model, self.builder, self.version = model.task, model, builder, version

    def verify(self, requests: Sequence[Request]) -> list[Verdict]:
        requests = list(requests)
        check_requests(self.task, requests)
        if not requests:
            return []
        items = [Item(r.media_id, r.phrase, list(r.masks), r.image, r.context) for r in requests]
        X, errors = self.builder.rows(self.task, items)
        ok = [i for i in range(len(items)) if i not in errors]
        probs = self.model.predict_proba(X[ok]) if ok else np.zeros((0, 1))
        out: list[Verdict] = [None] * len(requests)  # type: ignore[list-item]
        for i, row in zip(ok, probs):
            out[i] = make_verdict(requests[i], row, self.version)
        for i, reason in errors.items():
            out[i] = error_verdict(requests[i], self.version, reason)
        return out
