"""Near-duplicate phrase removal with sentence embeddings.

`dedupe(phrases, embedder, threshold)` keeps phrases in order and drops each one whose cosine
similarity to an already kept phrase is at least `threshold` ("red car" vs "a red automobile"),
recording which phrase it duplicates and how similar they were. Exact duplicates always go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ontology.embedding import Embedder

DEFAULT_THRESHOLD = 0.9


@dataclass(frozen=True)
class Duplicate:
    phrase: str
    duplicate_of: str
    similarity: float

    @property
    def reason(self) -> str:
        return f"near_duplicate: of {self.duplicate_of!r} (cosine {self.similarity:.3f})"


@dataclass
class DedupResult:
    kept: list[str] = field(default_factory=list)
    dropped: list[Duplicate] = field(default_factory=list)


def dedupe(
    phrases: Sequence[str],
    embedder: Embedder,
    threshold: float = DEFAULT_THRESHOLD,
    keep: Sequence[str] = (),
) -> DedupResult:
    """Greedy, order-preserving near-duplicate removal; `keep` are phrases already accepted earlier."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1], got {threshold!r}")
    result = DedupResult()
    unique: list[str] = []
    seen: dict[str, str] = {p: p for p in keep}
    for p in phrases:
        if p in seen:
            result.dropped.append(Duplicate(p, seen[p], 1.0))
        else:
            seen[p] = p
            unique.append(p)
    if not unique:
        return result
    prior = list(keep)
    emb = embedder.encode([*prior, *unique])
    kept_rows: list[int] = list(range(len(prior)))
    texts = [*prior, *unique]
    for i in range(len(prior), len(texts)):
        if kept_rows:
            sims = emb[kept_rows] @ emb[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                result.dropped.append(Duplicate(texts[i], texts[kept_rows[j]], float(sims[j])))
                continue
        kept_rows.append(i)
        result.kept.append(texts[i])
    return result
