"""Phrase features for the learned verifiers: a sentence embedding reduced to a few PCA dimensions.

`PhraseFeatures(embedder="minilm", dims=16)` embeds phrases with `ontology.embedding` (the offline
MiniLM, or "hashing" for tests and machines without it), fits a PCA on the training phrases and
maps any phrase to `dims` numbers. Embeddings are cached per phrase. It round-trips through
`state()` / `from_state()` (plain arrays) so a saved verifier embeds exactly as it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class PhraseFeatures:
    def __init__(self, embedder: str = "minilm", dims: int = 16):
        self.embedder_name, self.dims = embedder, int(dims)
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None  # (dims, D)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def names(self) -> list[str]:
        return ["phrase_words"] + [f"phrase_pc{i}" for i in range(self.dims)]

    def _embed(self, phrases: Sequence[str]) -> np.ndarray:
        new = [p for p in dict.fromkeys(phrases) if p not in self._cache]
        if new:
            from ontology.embedding import get_embedder

            for p, row in zip(new, get_embedder(self.embedder_name).encode(new)):
                self._cache[p] = row
        return (
            np.stack([self._cache[p] for p in phrases]) if phrases else np.zeros((0, 1), np.float32)
        )

    def fit(self, phrases: Sequence[str]) -> PhraseFeatures:
        uniq = list(dict.fromkeys(phrases))
        emb = self._embed(uniq).astype(np.float64)
        self.mean = emb.mean(axis=0)
        centred = emb - self.mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        comps = np.zeros((self.dims, emb.shape[1]))
        k = min(self.dims, vt.shape[0])
        comps[:k] = vt[:k]
        self.components = comps
        return self

    def transform(self, phrases: Sequence[str]) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("PhraseFeatures.transform before fit")
        words = np.array([[len(p.split())] for p in phrases], dtype=np.float32).reshape(-1, 1)
        if not len(phrases):
            return np.zeros((0, 1 + self.dims), np.float32)
        proj = (self._embed(list(phrases)) - self.mean) @ self.components.T
        return np.hstack([words, proj.astype(np.float32)])

    def state(self) -> dict:
        return {
            "embedder": self.embedder_name,
            "dims": self.dims,
            "mean": self.mean,
            "components": self.components,
        }

    @classmethod
    def from_state(cls, state: dict) -> PhraseFeatures:
        pf = cls(str(state["embedder"]), int(state["dims"]))
        pf.mean = np.asarray(state["mean"], dtype=np.float64)
        pf.components = np.asarray(state["components"], dtype=np.float64)
        return pf
