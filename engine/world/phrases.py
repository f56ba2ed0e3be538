"""Noun-phrase semantics of the shapes world: phrase -> predicate -> the exact set of instances.

Grammar: ``[article] [size] [pattern] [colour] NOUN`` — modifiers in any order, at most one per facet,
the noun last. Every word is a name or synonym of an ontology node (multi-word forms such as "round
shape" or "plus sign" included; a plural noun is read as its singular). The noun is any node under
`shape` (a leaf such as "triangle" or a category such as "polygon"); a modifier is a value under
`size`, `pattern` or `colour`. A phrase denotes every instance whose shape lies in the noun's
hierarchy closure (polygon => triangles, squares, hexagons, ...) and whose attributes lie in each
modifier's closure. A phrase no instance satisfies is a negative. Phrases outside the grammar raise
`PhraseParseError` naming the phrase and the offending word.

Positive phrases of an image (`positive_concepts`) — the full lattice is every (ancestor-or-self
noun) x (each facet: absent or the instance's value), easily 100-250 phrases per image, so the
default `standard` set is, for every distinct kind (shape, colour, pattern, size) present: the noun
("triangle"), noun + one attribute ("red triangle", "striped triangle", "small triangle"), and the
full description ("small striped red triangle"); plus each category present ("polygon", "round
shape") and each attribute value present on the root noun ("red shape", "striped shape", "small
shape"). `mode="all"` gives the full lattice.

Hard negatives (`hard_negative_concepts`) — absent phrases close to present ones: (a) ontology
siblings of present shapes and categories, bare and with the present colour ("hexagon", "red
hexagon", "round shape"); (b) present kinds with one attribute swapped for another value of the
domain ("blue triangle", "dotted triangle", "small striped blue triangle"); (c) present colours on
other present shapes ("red circle" when there are a red triangle and a blue circle).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from engine.world.vocab import FACETS, HEAD, vocabulary, world_graph
from ontology.graph import ConceptGraph
from storage.records import PhraseError, normalise_phrase

ARTICLES = frozenset({"a", "an", "the"})
MAX_SPAN = 3  # longest surface form, in words


class PhraseParseError(ValueError):
    """A phrase outside the shapes-world grammar; the message names the phrase and the reason."""


@dataclass(frozen=True)
class Concept:
    """A parsed phrase: a noun node and optional modifier nodes (ontology ids)."""

    head: str
    size: str | None = None
    pattern: str | None = None
    colour: str | None = None

    def replace(self, **changes: str | None) -> Concept:
        fields = {"head": self.head, "size": self.size, "pattern": self.pattern, "colour": self.colour}
        fields.update(changes)
        return Concept(**fields)


class Semantics:
    """Parses phrases against a concept graph and evaluates them on instance attributes."""

    def __init__(self, graph: ConceptGraph | None = None, head: str = HEAD, facets: Sequence[str] = FACETS):
        self.graph = graph or world_graph()
        self.head = head
        self.facets = tuple(facets)
        self._roots = {head, *self.facets}
        self._closure: dict[str, frozenset[str]] = {n.id: self.graph.closure(n.id) for n in self.graph}
        self._facet_of: dict[str, str] = {}
        for node in self.graph:
            roots = set(self.graph.root_of(node.id)) & self._roots
            if len(roots) == 1:
                self._facet_of[node.id] = roots.pop()
        self.parse = lru_cache(maxsize=65536)(self._parse)  # type: ignore[method-assign]
        self._lattice = lru_cache(maxsize=65536)(self._lattice_uncached)
        self._text: dict[Concept, str] = {}

    # --- parsing ---------------------------------------------------------------------------------
    def _lookup(self, words: Sequence[str]) -> str | None:
        node = self.graph.lookup(" ".join(words))
        if node is None and words[-1].endswith("s"):
            for cut in (1, 2):  # plurals: circles -> circle, crosses -> cross
                node = self.graph.lookup(" ".join((*words[:-1], words[-1][:-cut])))
                if node is not None:
                    break
        return None if node is None else node.id

    def _parse(self, phrase: str) -> Concept:
        try:
            words = normalise_phrase(phrase).split(" ")
        except PhraseError as err:
            raise PhraseParseError(str(err)) from None
        while words and words[0] in ARTICLES:
            words = words[1:]
        if not words:
            raise PhraseParseError(f"phrase {phrase!r} has no words besides articles")
        found: list[tuple[str, str]] = []  # (surface, node id)
        i = 0
        while i < len(words):
            for span in range(min(MAX_SPAN, len(words) - i), 0, -1):
                nid = self._lookup(words[i : i + span])
                if nid is not None:
                    found.append((" ".join(words[i : i + span]), nid))
                    i += span
                    break
            else:
                raise PhraseParseError(
                    f"phrase {phrase!r}: unknown word {words[i]!r} (not in the {self.graph.name} ontology)")
        mods: dict[str, str] = {}
        head: str | None = None
        for pos, (surface, nid) in enumerate(found):
            facet = self._facet_of.get(nid)
            if facet is None:
                raise PhraseParseError(f"phrase {phrase!r}: {surface!r} is not a noun or an attribute value")
            if nid in self.facets:
                raise PhraseParseError(f"phrase {phrase!r}: {surface!r} is an attribute category, not a value")
            if facet == self.head:
                if pos != len(found) - 1:
                    raise PhraseParseError(f"phrase {phrase!r}: the noun {surface!r} must come last")
                head = nid
            elif facet in mods:
                raise PhraseParseError(f"phrase {phrase!r}: two {facet} values ({mods[facet]!r} and {nid!r})")
            else:
                mods[facet] = nid
        if head is None:
            raise PhraseParseError(f"phrase {phrase!r} has no noun (e.g. {phrase.strip() + ' ' + self.head!r})")
        return Concept(head=head, **mods)

    def text(self, concept: Concept) -> str:
        """The canonical phrase: modifiers in size, pattern, colour order, then the noun."""
        cached = self._text.get(concept)
        if cached is None:
            cached = self._text[concept] = self._text_uncached(concept)
        return cached

    def _text_uncached(self, concept: Concept) -> str:
        words = [self.graph.node(getattr(concept, f)).name for f in self.facets if getattr(concept, f)]
        return " ".join((*words, self.graph.node(concept.head).name))

    def concept(self, phrase: str | Concept) -> Concept:
        return phrase if isinstance(phrase, Concept) else self.parse(phrase)

    # --- evaluation ------------------------------------------------------------------------------
    def matches(self, concept: Concept, attrs: Mapping[str, str]) -> bool:
        if attrs[self.head] not in self._closure[concept.head]:
            return False
        for facet in self.facets:
            value = getattr(concept, facet)
            if value is not None and attrs[facet] not in self._closure[value]:
                return False
        return True

    def select(self, phrase: str | Concept, objects: Iterable) -> list:
        """The objects (anything with `.attrs`) that satisfy the phrase, in order."""
        concept = self.concept(phrase)
        return [o for o in objects if self.matches(concept, o.attrs)]

    # --- enumeration -----------------------------------------------------------------------------
    def _chain(self, nid: str, root: str) -> list[str]:
        """nid and its ancestors strictly under `root` (the root itself excluded), deepest first."""
        up = [a for a in self.graph.ancestors(nid) if a != root and a in self._closure[root]]
        return [nid, *sorted(up, key=lambda a: (-len(self.graph.ancestors(a)), a))]

    def concepts_of(self, attrs: Mapping[str, str]) -> frozenset[Concept]:
        """Every concept an instance with these attributes satisfies (the full lattice)."""
        return self._lattice(tuple(attrs[a] for a in (self.head, *self.facets)))

    def _lattice_uncached(self, kind: tuple[str, ...]) -> frozenset[Concept]:
        nouns = [*self._chain(kind[0], self.head), self.head]
        options = [[None, *self._chain(value, f)] for f, value in zip(self.facets, kind[1:])]
        return frozenset(Concept(noun, **dict(zip(self.facets, mods)))
                         for noun in nouns for mods in itertools.product(*options))

    def present_concepts(self, objects: Iterable) -> set[Concept]:
        """Every concept at least one object satisfies: `c in present` <=> c is positive."""
        out: set[Concept] = set()
        for kind in {tuple(o.attrs[a] for a in (self.head, *self.facets)) for o in objects}:
            out |= self._lattice(kind)
        return out

    def positive_concepts(self, objects: Iterable, mode: str = "standard") -> list[Concept]:
        if mode not in ("standard", "all"):
            raise ValueError(f"positive phrase mode must be 'standard' or 'all', got {mode!r}")
        kinds = sorted({tuple(o.attrs[a] for a in (self.head, *self.facets)) for o in objects})
        out: set[Concept] = set()
        for kind in kinds:
            attrs = dict(zip((self.head, *self.facets), kind))
            if mode == "all":
                out |= self.concepts_of(attrs)
                continue
            shape = attrs[self.head]
            out.add(Concept(shape))
            out.add(Concept(shape, **{f: attrs[f] for f in self.facets}))
            for facet in self.facets:
                out.add(Concept(shape, **{facet: attrs[facet]}))
                out.add(Concept(self.head, **{facet: attrs[facet]}))
            out.update(Concept(noun) for noun in self._chain(shape, self.head)[1:])
        return sorted(out, key=self.text)

    def _in_domain(self, nid: str, domain: str) -> bool:
        vocab = vocabulary(domain)
        leaves = vocab.shape if self._facet_of[nid] == self.head else vocab.values(self._facet_of[nid])
        return bool(self._closure[nid] & set(leaves))

    def hard_negative_concepts(self, objects: Sequence, domain: str,
                               present: set[Concept] | None = None) -> list[Concept]:
        """Absent phrases close to present ones (siblings, one swapped attribute, recombinations)."""
        vocab = vocabulary(domain)
        kinds = {tuple(o.attrs[k] for k in (self.head, *self.facets)) for o in objects}
        cands: set[Concept] = set()
        for shape, *values in kinds:
            attrs = dict(zip(self.facets, values))
            for noun in self._chain(shape, self.head):
                for sib in self.graph.siblings(noun):
                    if self._in_domain(sib, domain):
                        cands.add(Concept(sib))
                        cands.add(Concept(sib, colour=attrs["colour"]))
            for facet in self.facets:
                for other in vocab.values(facet):
                    if other != attrs[facet]:
                        cands.add(Concept(shape, **{facet: other}))
                        cands.add(Concept(shape, **{**attrs, facet: other}))
        colours = {k[1 + self.facets.index("colour")] for k in kinds}
        for shape in {k[0] for k in kinds}:
            cands.update(Concept(shape, colour=c) for c in colours)
        present = self.present_concepts(objects) if present is None else present
        return sorted(cands - present, key=self.text)

    def random_concept(self, rng: np.random.Generator, domain: str) -> Concept:
        vocab = vocabulary(domain)
        categories = [n for n in sorted(self._closure[self.head])
                      if n not in vocab.shape and self._in_domain(n, domain)]
        nouns = [*vocab.shape, *vocab.shape, *categories]  # leaves twice as likely as categories
        mods = {f: (vocab.values(f)[int(rng.integers(len(vocab.values(f))))] if rng.random() < 0.5 else None)
                for f in self.facets}
        return Concept(nouns[int(rng.integers(len(nouns)))], **mods)

    def negative_concepts(self, objects: Sequence, domain: str, k: int, rng: np.random.Generator,
                          hard_fraction: float = 0.5) -> list[tuple[Concept, bool]]:
        """k absent concepts: up to ceil(k * hard_fraction) hard ones, then random ones; (concept, is_hard)."""
        if k <= 0:
            return []
        present = self.present_concepts(objects)
        hard = self.hard_negative_concepts(objects, domain, present)
        order = rng.permutation(len(hard))
        hard = [hard[i] for i in order]
        n_hard = min(len(hard), math.ceil(k * hard_fraction))
        chosen: list[tuple[Concept, bool]] = [(c, True) for c in hard[:n_hard]]
        seen = {c for c, _ in chosen}
        hard_set = set(hard)
        tries = 0
        while len(chosen) < k and tries < 40 * k:
            tries += 1
            c = self.random_concept(rng, domain)
            if c not in seen and c not in present:
                seen.add(c)
                chosen.append((c, c in hard_set))
        for c in hard[n_hard:]:  # the random pool ran dry: top up with more hard ones
            if len(chosen) >= k:
                break
            if c not in seen:
                seen.add(c)
                chosen.append((c, True))
        return chosen


@lru_cache(maxsize=1)
def semantics() -> Semantics:
    """The shapes world's semantics over the bundled ontology (built once)."""
    return Semantics()
