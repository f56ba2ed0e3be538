"""Relative and subgraph queries over a `ConceptGraph`: cousins, uncles, hard-negative relatives, domains.

`ontology.graph` answers the basic hierarchy questions (ancestors, descendants, siblings); this module
adds the ones the data engine needs on top of them (reference/sam3.md §3):

- `cousins(g, n)`: children of the parents' siblings (share a grandparent, not a parent);
- `uncles(g, n)`: siblings of the parents;
- `relatives(g, n)`: siblings, cousins and uncles as hard-negative candidates, each tagged with its
  relation, never in an is-a relation with `n` (a "cat" is not a negative for "animal" or "tabby");
- `domain_subgraph(g, domain)`: the nodes of one domain plus the ancestors that connect them, as a
  new `ConceptGraph`; `subgraph(g, roots)`: everything under some roots;
- `graph_stats(g)`: sizes, depth and branching, for `sam3-engine ontology stats`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ontology.graph import ConceptGraph, ConceptNode

RELATION_ORDER = ("sibling", "cousin", "uncle")


def _unrelated(graph: ConceptGraph, node_id: str, candidates: Iterable[str]) -> set[str]:
    """Candidates that are neither the node, nor its ancestors, nor its descendants."""
    blocked = graph.ancestors(node_id) | graph.descendants(node_id) | {node_id}
    return {c for c in candidates if c not in blocked}


def uncles(graph: ConceptGraph, node_id: str) -> frozenset[str]:
    """Siblings of the node's parents (not its own ancestors)."""
    out: set[str] = set()
    for parent in graph.parents(node_id):
        out |= graph.siblings(parent)
    return frozenset(_unrelated(graph, node_id, out))


def cousins(graph: ConceptGraph, node_id: str) -> frozenset[str]:
    """Children of the parents' siblings: nodes sharing a grandparent but no parent with the node."""
    out: set[str] = set()
    for uncle in uncles(graph, node_id):
        out.update(graph.children(uncle))
    out -= graph.siblings(node_id)
    return frozenset(_unrelated(graph, node_id, out))


@dataclass(frozen=True)
class Relative:
    """A node related to a query node, and how (sibling, cousin or uncle)."""

    node_id: str
    relation: str


def relatives(
    graph: ConceptGraph,
    node_id: str,
    kinds: Iterable[str] = RELATION_ORDER,
    domain: str | None = None,
) -> list[Relative]:
    """Hard-negative candidates for `node_id`: closest relations first, each node once, in graph order.

    A node reachable through several relations is reported under the closest one. Nodes in an is-a
    relation with `node_id` (either direction) are never returned; with `domain`, only nodes of
    that domain are.
    """
    kinds = tuple(kinds)
    unknown = set(kinds) - set(RELATION_ORDER)
    if unknown:
        raise ValueError(f"unknown relation kind(s) {sorted(unknown)} (allowed: {RELATION_ORDER})")
    order = {nid: i for i, nid in enumerate(n.id for n in graph)}
    found: dict[str, str] = {}
    queries = {
        "sibling": lambda: _unrelated(graph, node_id, graph.siblings(node_id)),
        "cousin": lambda: cousins(graph, node_id),
        "uncle": lambda: uncles(graph, node_id),
    }
    for kind in RELATION_ORDER:
        if kind not in kinds:
            continue
        for nid in sorted(queries[kind](), key=order.__getitem__):
            if nid in found or (domain is not None and not graph.in_domain(nid, domain)):
                continue
            found[nid] = kind
    return [Relative(nid, rel) for nid, rel in found.items()]


def _restricted(graph: ConceptGraph, keep: set[str], name: str) -> ConceptGraph:
    nodes: list[ConceptNode] = []
    for node in graph:
        if node.id in keep:
            parents = tuple(p for p in node.parents if p in keep)
            nodes.append(replace(node, parents=parents))
    return ConceptGraph(nodes, name=name, domains=graph.domains)


def domain_subgraph(graph: ConceptGraph, domain: str) -> ConceptGraph:
    """The nodes of `domain` (nodes without domains belong to all) plus the ancestors linking them."""
    members = {n.id for n in graph if graph.in_domain(n.id, domain)}
    if not any(graph.node(m).domains for m in members) and domain not in graph.domains:
        raise ValueError(
            f"ontology {graph.name!r} has no domain {domain!r} (domains: {list(graph.domains)})"
        )
    keep = set(members)
    for nid in members:
        keep |= graph.ancestors(nid)
    return _restricted(graph, keep, f"{graph.name}[{domain}]")


def subgraph(graph: ConceptGraph, roots: Iterable[str]) -> ConceptGraph:
    """Everything under (and including) `roots`; parents outside the selection are dropped."""
    keep: set[str] = set()
    for root in roots:
        keep |= graph.closure(root)
    return _restricted(graph, keep, graph.name)


def graph_stats(graph: ConceptGraph) -> dict[str, object]:
    """Summary numbers of a graph: nodes, roots, leaves, surface forms, depth, branching, domains."""
    memo: dict[str, int] = {}
    for node in graph:  # longest parent chain per node, iteratively (WordNet/Wikidata are deep)
        stack = [node.id]
        while stack:
            nid = stack[-1]
            if nid in memo:
                stack.pop()
                continue
            pending = [p for p in graph.parents(nid) if p not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[nid] = 0 if not graph.parents(nid) else 1 + max(memo[p] for p in graph.parents(nid))
            stack.pop()
    child_counts = [len(graph.children(n.id)) for n in graph]
    inner = [c for c in child_counts if c]
    per_domain = {d: sum(1 for n in graph if graph.in_domain(n.id, d)) for d in graph.domains}
    return {
        "name": graph.name,
        "nodes": len(graph),
        "roots": len(graph.roots()),
        "leaves": sum(1 for c in child_counts if not c),
        "surface_forms": len(graph.surface_forms()),
        "max_depth": max(memo.values(), default=0),
        "mean_branching": round(sum(inner) / len(inner), 2) if inner else 0.0,
        "multi_parent_nodes": sum(1 for n in graph if len(n.parents) > 1),
        "domains": per_domain,
    }
