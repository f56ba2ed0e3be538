"""Turn raw concepts from any source into a valid `ConceptGraph`: parents first, cycles and
dangling parents dropped, and every surface form owned by exactly one node.

Real ontologies are messier than the graph's invariants allow: WordNet lemmas name many synsets
("bank"), Wikidata labels repeat ("Paris") and its subclass-of edges contain cycles and references to
items outside the extract. `build_graph` resolves each of these deterministically and counts what it
changed in a `BuildReport`, so a loader never fails on the shape of the data, only on unreadable input:

- a surface form goes to its preferred owner (e.g. WordNet's most frequent sense), else the first
  node that lists it; other nodes keep it in `attrs["other_forms"]`;
- a node whose every form is owned elsewhere gets a disambiguated name, "bank (slope)" from a hint,
  or "bank (<id>)";
- parents not in the extract are dropped; an edge closing a cycle is dropped;
- nodes are ordered parents first, so graph construction is linear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ontology.graph import ConceptGraph, ConceptNode, OntologyError


def _key(text: str) -> str:
    """`ontology.graph.surface_key` without the regex (same result; hot in big loads)."""
    return " ".join(text.split()).lower()


@dataclass
class RawConcept:
    """A concept as a source states it: forms in preference order (the first is its label)."""

    id: str
    forms: list[str]
    parents: list[str] = field(default_factory=list)
    domains: tuple[str, ...] = ()
    description: str = ""
    hint: str = ""  # short disambiguator for a clashing name, e.g. a hypernym's label
    attrs: dict = field(default_factory=dict)


@dataclass
class BuildReport:
    nodes: int = 0
    dropped_parents: int = 0  # parent ids not in the extract
    dropped_cycle_edges: int = 0
    shared_forms: int = 0  # forms kept by another node
    renamed: int = 0  # names disambiguated
    nameless: int = 0  # concepts without any usable form (skipped)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _topological(concepts: dict[str, RawConcept], report: BuildReport) -> list[str]:
    """Ids parents-first (iterative DFS); edges that close a cycle are removed from `concepts`."""
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    order: list[str] = []
    for start in concepts:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            nid, i = stack[-1]
            parents = concepts[nid].parents
            if i < len(parents):
                stack[-1] = (nid, i + 1)
                parent = parents[i]
                mark = state.get(parent)
                if mark == 1:  # back edge: drop it
                    parents[i] = ""
                    report.dropped_cycle_edges += 1
                elif mark is None:
                    state[parent] = 1
                    stack.append((parent, 0))
                continue
            concepts[nid].parents = [p for p in parents if p]
            state[nid] = 2
            order.append(nid)
            stack.pop()
    return order


def build_graph(
    raw: Iterable[RawConcept],
    name: str,
    preferred_owner: Mapping[str, str] | None = None,
    domains: Iterable[str] = (),
) -> tuple[ConceptGraph, BuildReport]:
    """Build a valid graph from raw concepts; see the module docstring for the rules."""
    report = BuildReport()
    concepts: dict[str, RawConcept] = {}
    for concept in raw:
        forms = [f.strip() for f in concept.forms if f and f.strip()]
        if not forms:
            report.nameless += 1
            continue
        concept.forms = forms
        concepts.setdefault(concept.id, concept)
    for concept in concepts.values():
        kept = [p for p in dict.fromkeys(concept.parents) if p in concepts and p != concept.id]
        report.dropped_parents += len(set(concept.parents)) - len(kept)
        concept.parents = kept
    order = _topological(concepts, report)

    preferred = preferred_owner or {}
    owner: dict[str, str] = {}
    for nid in order:
        for form in concepts[nid].forms:
            key = _key(form)
            want = preferred.get(key)
            if want in concepts and want != nid:
                continue  # reserved for its preferred owner
            owner.setdefault(key, nid)

    nodes: list[ConceptNode] = []
    for nid in order:
        concept = concepts[nid]
        mine, others = [], []
        for form in concept.forms:
            (mine if owner.get(_key(form)) == nid else others).append(form)
        mine = list(dict.fromkeys(mine))
        if mine:
            name_form, synonyms = mine[0], tuple(f for f in mine[1:] if _key(f) != _key(mine[0]))
            synonyms = tuple(dict((_key(f), f) for f in synonyms).values())
        else:
            name_form, synonyms = _disambiguate(concept, owner), ()
            owner[_key(name_form)] = nid
            report.renamed += 1
        report.shared_forms += len(others)
        attrs = dict(concept.attrs)
        if others:
            attrs["other_forms"] = list(dict.fromkeys(others))
        if concept.forms[0] != name_form:
            attrs.setdefault("label", concept.forms[0])
        nodes.append(
            ConceptNode(
                id=nid,
                name=name_form,
                synonyms=synonyms,
                parents=tuple(concept.parents),
                domains=tuple(concept.domains),
                description=concept.description,
                attrs=attrs,
            )
        )
    report.nodes = len(nodes)
    return ConceptGraph(nodes, name=name, domains=tuple(domains)), report


def restrict_to_roots(raw: list[RawConcept], roots: Iterable[str]) -> list[RawConcept]:
    """The concepts under (and including) `roots`, by their stated parent edges; unknown roots fail."""
    known = {c.id for c in raw}
    roots = list(roots)
    missing = [r for r in roots if r not in known]
    if missing:
        raise OntologyError(f"root id(s) {missing} not in the source")
    children: dict[str, list[str]] = {}
    for concept in raw:
        for parent in concept.parents:
            children.setdefault(parent, []).append(concept.id)
    keep, frontier = set(roots), list(roots)
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in keep:
                keep.add(child)
                frontier.append(child)
    return [c for c in raw if c.id in keep]


def _disambiguate(concept: RawConcept, owner: Mapping[str, str]) -> str:
    label = concept.forms[0]
    for candidate in (f"{label} ({concept.hint})" if concept.hint else "", f"{label} ({concept.id})"):
        if candidate and _key(candidate) not in owner:
            return candidate
    n = 2
    while _key(f"{label} ({concept.id} {n})") in owner:
        n += 1
    return f"{label} ({concept.id} {n})"


def display_phrase(node: ConceptNode) -> str:
    """The phrase to show or prompt with for a node: its plain label, never a disambiguated name."""
    label = node.attrs.get("label") if node.attrs else None
    return str(label) if label else node.name
