"""The one interface every noun-phrase proposer implements, and the cleaning they all share.

A proposer turns `ProposalRequest`s (a media item: id, optional image and caption, domain, known
positives) into one `ProposalBatch` per request: cleaned, de-duplicated `Proposal`s and the raw
outputs it `dropped`, each with a reason (`schema: ...` for output off the JSON schema, the
normaliser's reason codes, `duplicate`, `over_budget`). Nothing a model says is fatal: a failed
call drops that request's output with an `error: ...` reason. `stats` counts proposals and drops
by reason across calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ontology.normalise import PhraseNormaliser


@dataclass
class ProposalRequest:
    media_id: str
    image: Any = None  # bytes, path or array: for model-in-the-loop and multimodal proposers
    domain: str | None = None
    caption: str | None = None
    positives: Sequence[str] = ()


@dataclass(frozen=True)
class Proposal:
    phrase: str
    source: str  # proposer name, e.g. "ontology", "model", "openai", "local_lm"
    node_id: str | None = None
    score: float | None = None
    relation: str | None = None  # set for relatives added by the model-in-the-loop proposer


@dataclass(frozen=True)
class Dropped:
    raw: str
    reason: str


@dataclass
class ProposalBatch:
    media_id: str
    proposals: list[Proposal] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)


class BaseProposer:
    """Shared cleaning: normalise, drop exact duplicates, cap per image, count everything."""

    name = "base"

    def __init__(self, per_image: int = 16, normaliser: PhraseNormaliser | None = None):
        self.per_image = per_image
        self.normaliser = normaliser or PhraseNormaliser()
        self.stats: Counter = Counter()

    def propose(self, requests: Sequence[ProposalRequest]) -> list[ProposalBatch]:
        return [self.propose_one(r) for r in requests]

    def propose_one(self, request: ProposalRequest) -> ProposalBatch:
        raise NotImplementedError

    def finish(
        self,
        request: ProposalRequest,
        raw: Iterable[Proposal | str],
        dropped: Iterable[Dropped] = (),
    ) -> ProposalBatch:
        batch = ProposalBatch(request.media_id, dropped=list(dropped))
        seen: set[str] = set()
        for item in raw:
            prop = item if isinstance(item, Proposal) else Proposal(str(item), self.name)
            self.stats["raw"] += 1
            norm = self.normaliser.normalise(prop.phrase)
            if not norm.ok:
                batch.dropped.append(Dropped(prop.phrase, norm.message))
                continue
            if norm.phrase in seen:
                batch.dropped.append(Dropped(prop.phrase, "duplicate: same phrase after normalisation"))
                continue
            if len(batch.proposals) >= self.per_image:
                batch.dropped.append(Dropped(prop.phrase, f"over_budget: {self.per_image} per image"))
                continue
            seen.add(norm.phrase)
            batch.proposals.append(Proposal(norm.phrase, prop.source, prop.node_id, prop.score, prop.relation))
        self.stats["proposed"] += len(batch.proposals)
        for d in batch.dropped:
            self.stats["dropped:" + d.reason.split(":", 1)[0]] += 1
        return batch
