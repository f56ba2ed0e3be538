"""Concept coverage: how many positive and negative pairs each ontology node has, and which are starved.

`CoverageTracker(graph)` counts labels per node (`add(node_id, label)`, or `add_pairs` with a
phrase -> node function such as `PhraseMapper.map`). Counts are *direct*; `counts(node,
closure=True)` also sums the node's descendants, since a "canoe" positive is a "boat" positive
(hierarchy closure). `starved(...)` lists the nodes a campaign should target next: those below the
wanted positives/negatives, biggest deficit first, optionally only leaves or one domain. Phrases
that map to no node are counted as `unmapped`. The tracker saves to and loads from JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ontology.graph import ConceptGraph

LABELS = ("positive", "negative")


@dataclass(frozen=True)
class NodeCoverage:
    node_id: str
    name: str
    positives: int
    negatives: int
    deficit: int  # missing positives + missing negatives against the targets


class CoverageTracker:
    def __init__(self, graph: ConceptGraph):
        self.graph = graph
        self._counts: dict[str, Counter] = {label: Counter() for label in LABELS}
        self.unmapped: Counter = Counter()

    def add(self, node_id: str, label: str, n: int = 1) -> None:
        if label not in LABELS:
            return  # dropped pairs say nothing about coverage
        self.graph.node(node_id)
        self._counts[label][node_id] += n

    def add_pairs(self, pairs: Iterable, to_node: Callable[[str], str | None]) -> None:
        """Count pairs (objects with `.phrase` and `.label`, or (phrase, label) tuples)."""
        cache: dict[str, str | None] = {}
        for pair in pairs:
            phrase, label = (pair.phrase, pair.label) if hasattr(pair, "phrase") else pair
            if label not in LABELS:
                continue
            if phrase not in cache:
                node = to_node(phrase)
                cache[phrase] = getattr(node, "node_id", node)
            nid = cache[phrase]
            if nid is None:
                self.unmapped[label] += 1
            else:
                self.add(nid, label)

    def counts(self, node_id: str, closure: bool = True) -> tuple[int, int]:
        """(positives, negatives) of the node, with its descendants when `closure`."""
        nodes = self.graph.closure(node_id) if closure else {node_id}
        return tuple(sum(self._counts[label][n] for n in nodes) for label in LABELS)  # type: ignore[return-value]

    def starved(
        self,
        min_positives: int = 1,
        min_negatives: int = 1,
        domain: str | None = None,
        leaves_only: bool = True,
        under: str | None = None,
        closure: bool = True,
        limit: int | None = None,
    ) -> list[NodeCoverage]:
        """Nodes below the targets, biggest deficit first (ties in graph order)."""
        pool = self.graph.closure(under) if under else None
        out = []
        for node in self.graph:
            if pool is not None and node.id not in pool:
                continue
            if domain is not None and not self.graph.in_domain(node.id, domain):
                continue
            if leaves_only and self.graph.children(node.id):
                continue
            pos, neg = self.counts(node.id, closure)
            deficit = max(0, min_positives - pos) + max(0, min_negatives - neg)
            if deficit:
                out.append(NodeCoverage(node.id, node.name, pos, neg, deficit))
        out.sort(key=lambda c: -c.deficit)
        return out[:limit] if limit is not None else out

    def summary(self) -> dict[str, int]:
        covered = {n for label in LABELS for n, c in self._counts[label].items() if c}
        return {
            "nodes": len(self.graph),
            "nodes_with_labels": len(covered),
            "positives": sum(self._counts["positive"].values()),
            "negatives": sum(self._counts["negative"].values()),
            "unmapped_positives": self.unmapped["positive"],
            "unmapped_negatives": self.unmapped["negative"],
        }

    def to_json(self) -> dict:
        return {"graph": self.graph.name, "counts": {k: dict(v) for k, v in self._counts.items()},
                "unmapped": dict(self.unmapped)}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, graph: ConceptGraph, path: str | Path) -> CoverageTracker:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        tracker = cls(graph)
        for label, counts in doc.get("counts", {}).items():
            for nid, n in counts.items():
                if nid in graph:
                    tracker.add(nid, label, int(n))
                else:
                    tracker.unmapped[label] += int(n)
        tracker.unmapped.update(doc.get("unmapped", {}))
        return tracker
