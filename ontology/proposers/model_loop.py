"""Model-in-the-loop proposer: score many candidate phrases per image with the current model, keep
the likely-present ones and add their ontology relatives.

Candidates come from a base proposer (typically a large `OntologySampler` draw). All candidates of
an image go to the predictor in one call, so the vision encoder runs once per image and each extra
phrase costs only the text and detector heads (`ontology.predictions.score_phrases`). A candidate
is kept when its best instance score reaches `score_threshold` or its presence reaches
`presence_threshold`; the `keep_top` most likely survive, each followed by up to
`relatives_per_phrase` relatives (the head noun swapped for a sibling or cousin), which are either
missed positives or hard-negative candidates: both are worth annotating.
"""

from __future__ import annotations

from ontology.graph import ConceptGraph
from ontology.loaders.common import display_phrase
from ontology.parse import segment
from ontology.predictions import PredictionError, PredictorLike, score_phrases
from ontology.proposers.base import BaseProposer, Dropped, Proposal, ProposalBatch, ProposalRequest
from ontology.relations import relatives


class ModelLoopProposer(BaseProposer):
    name = "model"

    def __init__(self, graph: ConceptGraph, predictor: PredictorLike, candidates: BaseProposer,
                 per_image: int = 16, keep_top: int = 8, score_threshold: float = 0.5,
                 presence_threshold: float = 0.5, relatives_per_phrase: int = 2, normaliser=None):
        super().__init__(per_image, normaliser)
        self.graph, self.predictor, self.candidates = graph, predictor, candidates
        self.keep_top, self.relatives_per_phrase = keep_top, relatives_per_phrase
        self.score_threshold, self.presence_threshold = score_threshold, presence_threshold

    def propose_one(self, request: ProposalRequest) -> ProposalBatch:
        if request.image is None:
            return self.finish(request, [], [Dropped("", "error: model-in-the-loop needs the image")])
        base = self.candidates.propose_one(request)
        phrases = [p.phrase for p in base.proposals]
        self.stats["scored"] += len(phrases)
        try:
            scores = score_phrases(self.predictor, request.media_id, request.image, phrases)
        except PredictionError as err:
            return self.finish(request, [], [Dropped("", f"error: {err}")])
        likely = []
        for prop in base.proposals:
            s = scores.get(prop.phrase)
            if s is None:
                continue
            if s.best_score >= self.score_threshold or s.presence >= self.presence_threshold:
                likely.append((max(s.best_score, s.presence), prop))
        likely.sort(key=lambda t: -t[0])
        raw: list[Proposal] = []
        dropped = [Dropped(p.phrase, "unlikely: the model does not see it") for p in base.proposals
                   if p.phrase not in {q.phrase for _, q in likely}]
        for score, prop in likely[: self.keep_top]:
            raw.append(Proposal(prop.phrase, self.name, prop.node_id, round(score, 4)))
            parsed = segment(self.graph, prop.phrase)
            if parsed.head is None or self.relatives_per_phrase <= 0:
                continue
            rels = relatives(self.graph, parsed.head, ("sibling", "cousin"), domain=request.domain)
            for rel in rels[: self.relatives_per_phrase]:
                text = parsed.replace(len(parsed.segments) - 1, display_phrase(self.graph.node(rel.node_id)))
                raw.append(Proposal(text, self.name, rel.node_id, None, rel.relation))
        return self.finish(request, raw, dropped)
