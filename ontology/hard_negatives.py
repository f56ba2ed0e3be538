"""Hard-negative mining: absent phrases the current model confuses with a present one (sam3.md §3).

For each positive phrase of an image the miner proposes candidates:

- ontology relatives of its head noun (siblings, cousins, uncles), bare and with the positive's
  modifiers ("red siamese cat" -> "tabby cat", "red tabby cat", "chihuahua", "dog");
- its modifiers swapped for sibling values ("red triangle" -> "blue triangle");
- phrases an LLM calls visually similar (`LLMProposer.similar_phrases`), when one is configured.

A candidate that *may be present* is never mined: the positives' masks tell which instances exist,
and each instance's known description is every positive whose masks contain it; a candidate
compatible with some instance's description (head nodes that share descendants, and no modifier
contradicting one of the same facet) is dropped with the instance's phrase as reason.

The adversarial check runs the current model on all of an image's candidates in one call: a
candidate on which it predicts nothing is discarded (an easy negative); one whose predictions
overlap the positive's masks with IoU >= `iou_threshold` is kept as a hard negative; the rest are
discarded unless `keep_non_overlapping`. At most `per_image` are kept, most confusable first. Every
candidate ends with a `Decision` and a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ontology.graph import ConceptGraph
from ontology.loaders.common import display_phrase
from ontology.normalise import PhraseNormaliser
from ontology.parse import ParsedPhrase, segment
from ontology.predictions import PredictionError, PredictorLike, score_phrases
from ontology.proposers.base import Dropped
from ontology.relations import RELATION_ORDER, relatives

ORIGIN_RANK = {"sibling": 0, "modifier": 1, "cousin": 2, "llm": 3, "uncle": 4}


class HardNegativeConfig(BaseModel):
    model_config = {"extra": "forbid"}
    relation_kinds: list[str] = Field(default_factory=lambda: list(RELATION_ORDER))
    swap_modifiers: bool = True
    keep_modifiers: bool = True
    llm_per_positive: int = Field(5, ge=0)
    llm_positives_per_image: int = Field(3, ge=0)
    max_candidates: int = Field(200, ge=1, description="per image, before the adversarial check")
    iou_threshold: float = Field(0.5, gt=0, le=1)
    score_threshold: float = Field(0.5, ge=0, le=1, description="predictions counted by the check")
    keep_non_overlapping: bool = False
    per_image: int = Field(15, ge=0, description="hard negatives kept per image")


@dataclass(frozen=True)
class Candidate:
    phrase: str
    positive: str  # the positive phrase it was derived from
    origin: str  # sibling | cousin | uncle | modifier | llm
    node_id: str | None = None


@dataclass
class Decision:
    candidate: Candidate
    kept: bool
    reason: str
    iou: float = 0.0
    n_predictions: int = 0
    best_score: float = 0.0


@dataclass
class MinedImage:
    media_id: str
    decisions: list[Decision] = field(default_factory=list)
    filtered: list[Dropped] = field(default_factory=list)  # candidates that never reached the check

    @property
    def hard_negatives(self) -> list[str]:
        return [d.candidate.phrase for d in self.decisions if d.kept]


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else 0.0


class HardNegativeMiner:
    def __init__(self, graph: ConceptGraph, config: HardNegativeConfig | dict | None = None,
                 predictor: PredictorLike | None = None, llm: Any = None,
                 normaliser: PhraseNormaliser | None = None):
        self.graph = graph
        self.config = config if isinstance(config, HardNegativeConfig) else HardNegativeConfig(**(config or {}))
        self.predictor, self.llm = predictor, llm
        self.normaliser = normaliser or PhraseNormaliser()
        self._facet = {n.id: (self.graph.root_of(n.id) or (n.id,))[0] for n in graph}

    # --- candidates ------------------------------------------------------------------------------
    def _name(self, node_id: str) -> str:
        return display_phrase(self.graph.node(node_id))

    def _from_positive(self, positive: str, domain: str | None) -> list[Candidate]:
        parsed = segment(self.graph, positive)
        out: list[Candidate] = []
        last = len(parsed.segments) - 1
        if parsed.head is not None:
            for rel in relatives(self.graph, parsed.head, self.config.relation_kinds, domain):
                name = self._name(rel.node_id)
                out.append(Candidate(name, positive, rel.relation, rel.node_id))
                if self.config.keep_modifiers and last > 0:
                    out.append(Candidate(parsed.replace(last, name), positive, rel.relation, rel.node_id))
        if self.config.swap_modifiers and parsed.head is not None:
            for i, seg in enumerate(parsed.segments[:-1]):
                if seg.node_id is None:
                    continue
                for sib in sorted(self.graph.siblings(seg.node_id)):
                    if domain is None or self.graph.in_domain(sib, domain):
                        out.append(Candidate(parsed.replace(i, self._name(sib)), positive, "modifier", parsed.head))
        return out

    def candidates(self, positives: Sequence[str], domain: str | None = None,
                   instances: Sequence[Sequence[str]] | None = None) -> tuple[list[Candidate], list[Dropped]]:
        """Candidates for an image's positives, minus those that may be present (see module doc).

        `instances`: per instance, the positive phrases that contain it (default: one per positive).
        """
        raw: list[Candidate] = []
        dropped: list[Dropped] = []
        for positive in positives:
            raw += self._from_positive(positive, domain)
        if self.llm is not None and self.config.llm_per_positive:
            for positive in list(positives)[: self.config.llm_positives_per_image]:
                phrases, rejected = self.llm.similar_phrases(positive, self.config.llm_per_positive, domain)
                raw += [Candidate(p, positive, "llm") for p in phrases]
                dropped += rejected
        descriptions = [[segment(self.graph, p) for p in inst] for inst in (instances or [[p] for p in positives])]
        known = set(positives)
        kept: dict[str, Candidate] = {}
        for cand in sorted(raw, key=lambda c: ORIGIN_RANK.get(c.origin, 9)):
            norm = self.normaliser.normalise(cand.phrase)
            if not norm.ok:
                dropped.append(Dropped(cand.phrase, norm.message))
                continue
            phrase = norm.phrase
            if phrase in kept:
                continue
            if phrase in known:
                dropped.append(Dropped(phrase, "present: it is a positive of the image"))
                continue
            parsed = segment(self.graph, phrase)
            clash = next((d for d in descriptions if self._compatible(parsed, d)), None)
            if clash is not None:
                dropped.append(Dropped(phrase, f"may_be_present: compatible with {clash[0].phrase!r}"))
                continue
            kept[phrase] = Candidate(phrase, cand.positive, cand.origin, cand.node_id)
        out = list(kept.values())
        for c in out[self.config.max_candidates:]:
            dropped.append(Dropped(c.phrase, f"over_budget: max_candidates={self.config.max_candidates}"))
        return out[: self.config.max_candidates], dropped

    def _overlap(self, a: str, b: str) -> bool:
        return bool(self.graph.closure(a) & self.graph.closure(b))

    def _compatible(self, cand: ParsedPhrase, description: Sequence[ParsedPhrase]) -> bool:
        """Could one instance satisfy `cand` and every phrase describing it? (unknown words: assume yes)"""
        if cand.head is None:
            return any(cand.phrase == d.phrase for d in description) or not cand.segments
        for d in description:
            if d.head is not None and not self._overlap(cand.head, d.head):
                return False
            for m in cand.modifiers:
                for n in d.modifiers:
                    if self._facet[m] == self._facet[n] and not self._overlap(m, n):
                        return False
        return True

    # --- adversarial check -----------------------------------------------------------------------
    def check(self, media_id: str, image: Any, positive_masks: Mapping[str, Sequence[np.ndarray]],
              candidates: Sequence[Candidate]) -> list[Decision]:
        """Run the model on every candidate (one call) and decide each; most confusable first."""
        cfg = self.config
        if self.predictor is None:
            return [Decision(c, i < cfg.per_image, "unchecked: no model" if i < cfg.per_image
                             else f"over_budget: {cfg.per_image} per image") for i, c in enumerate(candidates)]
        try:
            scores = score_phrases(self.predictor, media_id, image, [c.phrase for c in candidates],
                                   cfg.score_threshold)
        except PredictionError as err:
            return [Decision(c, False, f"error: {err}") for c in candidates]
        decisions = []
        for cand in candidates:
            s = scores.get(cand.phrase)
            if s is None or not s.n_predictions:
                decisions.append(Decision(cand, False, "easy: the model predicts nothing"))
                continue
            gts = [np.asarray(m, bool) for m in positive_masks.get(cand.positive, ())]
            preds = s.masks()
            iou = max((_mask_iou(p, g) for p in preds for g in gts if p.shape == g.shape), default=0.0)
            if iou >= cfg.iou_threshold:
                reason = f"confusable: predictions overlap {cand.positive!r} (IoU {iou:.2f})"
                decisions.append(Decision(cand, True, reason, iou, s.n_predictions, s.best_score))
            elif cfg.keep_non_overlapping:
                decisions.append(Decision(cand, True, f"fires elsewhere (IoU {iou:.2f})", iou,
                                          s.n_predictions, s.best_score))
            else:
                decisions.append(Decision(cand, False, f"elsewhere: IoU {iou:.2f} < {cfg.iou_threshold}",
                                          iou, s.n_predictions, s.best_score))
        decisions.sort(key=lambda d: (not d.kept, -d.iou, -d.best_score, ORIGIN_RANK.get(d.candidate.origin, 9)))
        n = 0
        for d in decisions:
            if d.kept:
                n += 1
                if n > cfg.per_image:
                    d.kept, d.reason = False, f"over_budget: {cfg.per_image} per image ({d.reason})"
        return decisions

    def mine(self, media_id: str, image: Any, positives: Mapping[str, Sequence[np.ndarray]],
             domain: str | None = None) -> MinedImage:
        """Candidates for the positives (phrase -> GT masks), filtered, then adversarially checked."""
        instances = _instances(positives)
        cands, dropped = self.candidates(list(positives), domain, instances)
        return MinedImage(media_id, self.check(media_id, image, positives, cands), dropped)


def _instances(positives: Mapping[str, Sequence[np.ndarray]]) -> list[list[str]] | None:
    """Per distinct GT mask, the positive phrases containing it (None when no masks are given)."""
    by_mask: dict[bytes, list[str]] = {}
    for phrase, masks in positives.items():
        for m in masks:
            m = np.asarray(m, bool)
            key = np.packbits(m).tobytes() + str(m.shape).encode()
            by_mask.setdefault(key, []).append(phrase)
    if not by_mask:
        return None
    covered = {p for ps in by_mask.values() for p in ps}
    return [*by_mask.values(), *([p] for p in positives if p not in covered)]
