"""Phrase -> ontology node mapping: exact surface forms, then embedding retrieval, then an optional judge.

`PhraseMapper(graph, embedder)` embeds every surface form (name and synonyms) of the graph's nodes
once. `map(phrase)` tries, in order:

1. `exact`: the phrase is a surface form;
2. `head`: its longest suffix that is a surface form ("yellow school bus" -> school bus);
3. `embedding`: the top-k nodes by cosine similarity (best form per node); the best is accepted
   when its similarity is at least `min_score`, unless a `judge` is given, which then picks one of
   the k candidates or none (`judge`).

Every result carries its candidates and, when unmapped, the reason. Judges implement `Judge`; the
LLM judge (`ontology.llm.LLMJudge`) asks an OpenAI-compatible model with a JSON schema whose enum is
the candidate ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ontology.embedding import Embedder
from ontology.graph import ConceptGraph
from ontology.normalise import singular


@dataclass(frozen=True)
class Candidate:
    node_id: str
    name: str
    form: str  # the surface form that matched best
    score: float


@dataclass
class Mapping:
    phrase: str
    node_id: str | None
    method: str  # exact | head | embedding | judge | unmapped
    score: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""


class Judge(Protocol):
    def choose(self, phrase: str, candidates: Sequence[Candidate], graph: ConceptGraph) -> str | None:
        """The id of the candidate the phrase denotes, or None for none of them."""
        ...


class PhraseMapper:
    def __init__(
        self,
        graph: ConceptGraph,
        embedder: Embedder,
        k: int = 5,
        min_score: float = 0.6,
        judge: Judge | None = None,
        nodes: Iterable[str] | None = None,
    ):
        self.graph, self.embedder, self.k, self.min_score, self.judge = graph, embedder, k, min_score, judge
        allowed = set(nodes) if nodes is not None else None
        self._forms: list[str] = []
        self._owners: list[str] = []
        for form, nid in graph.surface_forms().items():
            if allowed is None or nid in allowed:
                self._forms.append(form)
                self._owners.append(nid)
        self._node_ids = list(dict.fromkeys(self._owners))
        self._col = {nid: i for i, nid in enumerate(self._node_ids)}
        self._owner_col = np.array([self._col[n] for n in self._owners], dtype=np.int64)
        self._emb = embedder.encode(self._forms) if self._forms else np.zeros((0, 1), np.float32)

    def _exact(self, phrase: str) -> tuple[str, str] | None:
        words = phrase.lower().split()
        for start in range(len(words)):
            sub = words[start:]
            for text in (" ".join(sub), " ".join((*sub[:-1], singular(sub[-1])))):
                node = self.graph.lookup(text)
                if node is not None and (node.id in self._col):
                    return node.id, ("exact" if start == 0 else "head")
        return None

    def retrieve(self, phrases: Sequence[str], k: int | None = None) -> list[list[Candidate]]:
        """Top-k candidate nodes per phrase by embedding similarity (best surface form per node)."""
        k = k or self.k
        if not self._forms:
            return [[] for _ in phrases]
        sims = self.embedder.encode(list(phrases)) @ self._emb.T  # (P, F)
        out = []
        for row in sims:
            best = np.full(len(self._node_ids), -np.inf, dtype=np.float32)
            np.maximum.at(best, self._owner_col, row)
            best_form = {}
            for f in np.argsort(-row)[: max(4 * k, 16)]:
                best_form.setdefault(self._owners[f], self._forms[f])
            top = np.argsort(-best)[:k]
            out.append([
                Candidate(self._node_ids[c], self.graph.node(self._node_ids[c]).name,
                          best_form.get(self._node_ids[c], self.graph.node(self._node_ids[c]).name),
                          float(best[c]))
                for c in top
            ])
        return out

    def map(self, phrase: str) -> Mapping:
        return self.map_many([phrase])[0]

    def map_many(self, phrases: Sequence[str]) -> list[Mapping]:
        results: list[Mapping | None] = []
        pending: list[int] = []
        for i, phrase in enumerate(phrases):
            hit = self._exact(phrase)
            if hit is not None:
                results.append(Mapping(phrase, hit[0], hit[1], 1.0))
            else:
                results.append(None)
                pending.append(i)
        if pending:
            for i, cands in zip(pending, self.retrieve([phrases[i] for i in pending])):
                results[i] = self._decide(phrases[i], cands)
        return [r for r in results if r is not None]

    def _decide(self, phrase: str, cands: list[Candidate]) -> Mapping:
        if not cands:
            return Mapping(phrase, None, "unmapped", reason="the ontology has no surface forms")
        if self.judge is not None:
            try:
                chosen = self.judge.choose(phrase, cands, self.graph)
            except Exception as err:  # a judge failure leaves the phrase unmapped, never fatal
                return Mapping(phrase, None, "unmapped", cands[0].score, cands, f"judge failed: {err}")
            if chosen is None:
                return Mapping(phrase, None, "unmapped", cands[0].score, cands, "judge rejected all candidates")
            if chosen not in {c.node_id for c in cands}:
                return Mapping(phrase, None, "unmapped", cands[0].score, cands,
                               f"judge chose {chosen!r}, not a candidate")
            score = next(c.score for c in cands if c.node_id == chosen)
            return Mapping(phrase, chosen, "judge", score, cands)
        top = cands[0]
        if top.score < self.min_score:
            return Mapping(phrase, None, "unmapped", top.score, cands,
                           f"best similarity {top.score:.3f} < {self.min_score} ({top.name!r})")
        return Mapping(phrase, top.node_id, "embedding", top.score, cands)
