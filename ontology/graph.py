"""The concept graph: nodes (id, name, synonyms, parents, domains), hierarchy queries and YAML loading.

A `ConceptGraph` is a directed acyclic graph of concepts. Each node has a canonical `name`, surface
`synonyms`, any number of `parents` (multiple inheritance is allowed) and the `domains` it belongs
to (empty = every domain). The graph answers the hierarchy questions the engine asks: ancestors
(hierarchy closure, "canoe" => "boat"), descendants, siblings (hard negatives), and which node a
surface form names. It knows nothing about any particular world; loaders for other sources
(WordNet, Wikidata) build the same `ConceptNode`s.

YAML format (see `ontology/data/shapes.yaml`)::

    name: shapes
    domains: [base, night]          # optional: the domains the graph declares
    nodes:
      - id: polygon
        name: polygon               # optional, defaults to the id
        synonyms: [polygonal shape]
        parents: [shape]
        domains: [base]             # optional, empty = every domain
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "data"


class OntologyError(ValueError):
    """A malformed ontology (bad field, unknown parent, cycle, clashing surface form) or unknown id."""


def surface_key(text: str) -> str:
    """The form surface strings are compared in: lower case, single spaces."""
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass(frozen=True)
class ConceptNode:
    id: str
    name: str
    synonyms: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    description: str = ""
    attrs: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def surface_forms(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)


class ConceptGraph:
    """An immutable concept DAG with cached hierarchy queries."""

    def __init__(self, nodes: Iterable[ConceptNode], name: str = "", domains: Iterable[str] = ()):
        self.name = name
        self._nodes: dict[str, ConceptNode] = {}
        for node in nodes:
            if node.id in self._nodes:
                raise OntologyError(f"ontology {name!r}: duplicate node id {node.id!r}")
            self._nodes[node.id] = node
        self._index = {nid: i for i, nid in enumerate(self._nodes)}
        self._children: dict[str, list[str]] = {nid: [] for nid in self._nodes}
        for node in self._nodes.values():
            for parent in node.parents:
                if parent not in self._nodes:
                    raise OntologyError(
                        f"ontology {name!r}: node {node.id!r} has unknown parent {parent!r}"
                    )
                self._children[parent].append(node.id)
        self._surface: dict[str, str] = {}
        for node in self._nodes.values():
            for form in node.surface_forms:
                key = surface_key(form)
                other = self._surface.get(key)
                if other is not None and other != node.id:
                    raise OntologyError(
                        f"ontology {name!r}: surface form {form!r} names both {other!r} and {node.id!r}"
                    )
                self._surface[key] = node.id
        self._ancestors: dict[str, frozenset[str]] = {}
        for nid in self._nodes:
            self._ancestors[nid] = self._collect_ancestors(nid, ())
        self._descendants: dict[str, set[str]] = {nid: set() for nid in self._nodes}
        for nid, ancestors in self._ancestors.items():
            for anc in ancestors:
                self._descendants[anc].add(nid)
        declared = tuple(domains)
        self.domains = declared or tuple(sorted({d for n in self._nodes.values() for d in n.domains}))

    def _collect_ancestors(self, nid: str, path: tuple[str, ...]) -> frozenset[str]:
        if nid in path:
            cycle = " -> ".join((*path[path.index(nid):], nid))
            raise OntologyError(f"ontology {self.name!r}: cycle in parents: {cycle}")
        if nid in self._ancestors:
            return self._ancestors[nid]
        out: set[str] = set()
        for parent in self._nodes[nid].parents:
            out.add(parent)
            out |= self._collect_ancestors(parent, (*path, nid))
        return frozenset(out)

    # --- access ----------------------------------------------------------------------------------
    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __iter__(self) -> Iterator[ConceptNode]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, node_id: str) -> ConceptNode:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise OntologyError(f"ontology {self.name!r} has no node {node_id!r}") from None

    def lookup(self, text: str) -> ConceptNode | None:
        """The node whose name or synonym is `text` (case and spacing ignored), or None."""
        nid = self._surface.get(surface_key(text))
        return None if nid is None else self._nodes[nid]

    def surface_forms(self) -> dict[str, str]:
        """Every surface form (normalised) and the id of the node it names."""
        return dict(self._surface)

    # --- hierarchy -------------------------------------------------------------------------------
    def parents(self, node_id: str) -> tuple[str, ...]:
        return self.node(node_id).parents

    def children(self, node_id: str) -> tuple[str, ...]:
        self.node(node_id)
        return tuple(self._children[node_id])

    def ancestors(self, node_id: str) -> frozenset[str]:
        """All transitive parents, excluding the node itself."""
        self.node(node_id)
        return self._ancestors[node_id]

    def descendants(self, node_id: str) -> frozenset[str]:
        """All transitive children, excluding the node itself."""
        self.node(node_id)
        return frozenset(self._descendants[node_id])

    def closure(self, node_id: str) -> frozenset[str]:
        """The node and its descendants: everything the concept covers (hierarchy closure)."""
        return self.descendants(node_id) | {node_id}

    def is_a(self, node_id: str, other: str) -> bool:
        """True when `node_id` is `other` or one of its descendants."""
        return node_id == other or other in self.ancestors(node_id)

    def siblings(self, node_id: str) -> frozenset[str]:
        """Nodes sharing at least one parent with `node_id`, excluding itself."""
        out: set[str] = set()
        for parent in self.parents(node_id):
            out.update(self._children[parent])
        out.discard(node_id)
        return frozenset(out)

    def roots(self) -> tuple[str, ...]:
        return tuple(nid for nid, node in self._nodes.items() if not node.parents)

    def leaves(self, under: str | None = None) -> tuple[str, ...]:
        """Nodes without children, optionally only those under (or equal to) `under`."""
        pool = self._nodes if under is None else sorted(self.closure(under), key=self._order)
        return tuple(nid for nid in pool if not self._children[nid])

    def root_of(self, node_id: str) -> tuple[str, ...]:
        """The roots a node descends from (itself if it is a root)."""
        found = [a for a in (*self.ancestors(node_id), node_id) if not self._nodes[a].parents]
        return tuple(sorted(found, key=self._order))

    def in_domain(self, node_id: str, domain: str) -> bool:
        domains = self.node(node_id).domains
        return not domains or domain in domains

    def _order(self, node_id: str) -> int:
        return self._index[node_id]

    # --- serialisation ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: Mapping, source: str = "<dict>") -> ConceptGraph:
        if not isinstance(doc, Mapping):
            raise OntologyError(f"{source}: expected a mapping with 'nodes', got {type(doc).__name__}")
        raw_nodes = doc.get("nodes")
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise OntologyError(f"{source}: 'nodes' must be a non-empty list, got {raw_nodes!r:.80}")
        nodes = [_node_from_dict(raw, i, source) for i, raw in enumerate(raw_nodes)]
        domains = doc.get("domains") or ()
        return cls(nodes, name=str(doc.get("name", source)), domains=tuple(domains))

    def to_dict(self) -> dict:
        nodes = []
        for node in self._nodes.values():
            entry: dict[str, object] = {"id": node.id, "name": node.name}
            for key in ("synonyms", "parents", "domains"):
                if getattr(node, key):
                    entry[key] = list(getattr(node, key))
            if node.description:
                entry["description"] = node.description
            if node.attrs:
                entry["attrs"] = dict(node.attrs)
            nodes.append(entry)
        return {"name": self.name, "domains": list(self.domains), "nodes": nodes}


_NODE_KEYS = {"id", "name", "synonyms", "parents", "domains", "description", "attrs"}


def _str_list(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if isinstance(value, str) or not isinstance(value, list):
        raise OntologyError(f"{where}: field {key!r} must be a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise OntologyError(f"{where}: field {key!r} has a bad entry {item!r}")
    return tuple(value)


def _node_from_dict(raw: object, index: int, source: str) -> ConceptNode:
    where = f"{source}: nodes[{index}]"
    if not isinstance(raw, Mapping):
        raise OntologyError(f"{where}: expected a mapping, got {raw!r:.80}")
    unknown = set(raw) - _NODE_KEYS
    if unknown:
        raise OntologyError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: {sorted(_NODE_KEYS)})")
    nid = raw.get("id")
    if not isinstance(nid, str) or not nid.strip():
        raise OntologyError(f"{where}: field 'id' must be a non-empty string, got {nid!r}")
    name = raw.get("name", nid.replace("_", " "))
    if not isinstance(name, str) or not name.strip():
        raise OntologyError(f"{where} ({nid}): field 'name' must be a non-empty string, got {name!r}")
    attrs = raw.get("attrs") or {}
    if not isinstance(attrs, Mapping):
        raise OntologyError(f"{where} ({nid}): field 'attrs' must be a mapping, got {attrs!r}")
    return ConceptNode(
        id=nid,
        name=name,
        synonyms=_str_list(raw, "synonyms", f"{where} ({nid})"),
        parents=_str_list(raw, "parents", f"{where} ({nid})"),
        domains=_str_list(raw, "domains", f"{where} ({nid})"),
        description=str(raw.get("description", "")),
        attrs=dict(attrs),
    )


def load_yaml(path: str | Path) -> ConceptGraph:
    """Load a concept graph from a YAML file; errors name the file and the bad field."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise OntologyError(f"cannot read ontology {path}: {err}") from None
    except yaml.YAMLError as err:
        raise OntologyError(f"ontology {path} is not valid YAML: {err}") from None
    return ConceptGraph.from_dict(doc, source=str(path))


def load_bundled(name: str) -> ConceptGraph:
    """Load a graph shipped in `ontology/data/<name>.yaml`."""
    path = DATA_DIR / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in DATA_DIR.glob("*.yaml"))
        raise OntologyError(f"no bundled ontology {name!r} (available: {available})")
    return load_yaml(path)
