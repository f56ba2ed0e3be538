"""Ontology sampler: noun phrases drawn from a domain subgraph and filled into attribute templates.

Nouns are the nodes under `noun_root` (all non-facet nodes when unset) that belong to the request's
domain; leaves weigh `leaf_weight`, categories 1, and with a `CoverageTracker` every weight is
divided by (1 + the labelled pairs of the node and its descendants), so starved concepts come up first. A template such as
"{colour} {noun}" names facet roots in braces; each is filled with a random value under that facet
(in the domain). Draws are deterministic per (seed, media id).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from pydantic import BaseModel, Field

from ontology.coverage import CoverageTracker
from ontology.graph import ConceptGraph
from ontology.loaders.common import display_phrase
from ontology.proposers.base import BaseProposer, Proposal, ProposalBatch, ProposalRequest

_SLOT = re.compile(r"\{([A-Za-z0-9_.:-]+)\}")


class SamplerSettings(BaseModel):
    noun_root: str | None = None
    facets: list[str] = Field(default_factory=list, description="root ids of attribute facets")
    templates: list[str] = Field(default_factory=lambda: ["{noun}"])
    leaf_weight: float = Field(2.0, gt=0)
    seed: int = 0


# Sampler settings for the bundled ontologies (used when a config gives none).
BUNDLED_SAMPLERS: dict[str, dict] = {
    "shapes": {
        "noun_root": "shape",
        "facets": ["size", "pattern", "colour"],
        "templates": ["{noun}", "{colour} {noun}", "{pattern} {noun}", "{size} {noun}",
                      "{size} {pattern} {colour} {noun}"],
    },
    "common_objects": {
        "noun_root": "physical_object",
        "facets": ["colour", "material", "size"],
        "templates": ["{noun}", "{noun}", "{colour} {noun}", "{material} {noun}", "{size} {noun}"],
    },
}


def media_rng(seed: int, media_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\x1f{media_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class OntologySampler(BaseProposer):
    name = "ontology"

    def __init__(self, graph: ConceptGraph, settings: SamplerSettings | None = None, per_image: int = 16,
                 coverage: CoverageTracker | None = None, normaliser=None):
        super().__init__(per_image, normaliser)
        self.graph, self.s, self.coverage = graph, settings or SamplerSettings(), coverage
        for fid in [*self.s.facets, *([self.s.noun_root] if self.s.noun_root else [])]:
            graph.node(fid)  # fail early on a bad id
        for template in self.s.templates:
            slots = _SLOT.findall(template)
            if "noun" not in slots:
                raise ValueError(f"template {template!r} has no {{noun}} slot")
            bad = [s for s in slots if s != "noun" and s not in self.s.facets]
            if bad:
                raise ValueError(f"template {template!r} names {bad}, not in facets {self.s.facets}")
        facet_nodes = set().union(*(graph.closure(f) for f in self.s.facets)) if self.s.facets else set()
        pool = graph.closure(self.s.noun_root) if self.s.noun_root else {n.id for n in graph}
        order = {n.id: i for i, n in enumerate(graph)}
        self._nouns = sorted(pool - facet_nodes, key=order.__getitem__)
        self._values = {f: sorted(graph.descendants(f), key=order.__getitem__) for f in self.s.facets}

    def _pool(self, ids: list[str], domain: str | None) -> list[str]:
        return [n for n in ids if domain is None or self.graph.in_domain(n, domain)]

    def _weights(self, nouns: list[str]) -> np.ndarray:
        w = np.array([self.s.leaf_weight if not self.graph.children(n) else 1.0 for n in nouns])
        if self.coverage is not None:
            w = w / (1.0 + np.array([sum(self.coverage.counts(n, closure=True)) for n in nouns]))
        return w / w.sum()

    def propose_one(self, request: ProposalRequest) -> ProposalBatch:
        rng = media_rng(self.s.seed, request.media_id)
        nouns = self._pool(self._nouns, request.domain)
        if not nouns:
            return self.finish(request, [], [])
        weights = self._weights(nouns)
        values = {f: self._pool(v, request.domain) or v for f, v in self._values.items()}
        raw: list[Proposal] = []
        seen: set[str] = set()
        for _ in range(self.per_image * 4):
            if len(seen) >= self.per_image:
                break
            noun = nouns[int(rng.choice(len(nouns), p=weights))]
            template = self.s.templates[int(rng.integers(len(self.s.templates)))]
            fill = {"noun": display_phrase(self.graph.node(noun))}
            for facet in _SLOT.findall(template):
                if facet != "noun":
                    leaves = values[facet]
                    fill[facet] = display_phrase(self.graph.node(leaves[int(rng.integers(len(leaves)))]))
            phrase = _SLOT.sub(lambda m: fill[m.group(1)], template)
            if phrase not in seen:
                seen.add(phrase)
                raw.append(Proposal(phrase, self.name, node_id=noun))
        return self.finish(request, raw)
