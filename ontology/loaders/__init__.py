"""Ontology loaders and the one entry point that picks a loader from a source string.

Sources (what `sam3-engine ontology ... --source` and campaign configs accept):

- `shapes`, `common_objects` (or `bundled:NAME`): a YAML graph shipped in `ontology/data/`;
- `path/to/graph.yaml` (or `yaml:PATH`): a graph in the bundled YAML format;
- `wordnet` or `wordnet:DIR` (optionally `#root.n.01,other.n.01`): the WordNet 3.0 noun hierarchy;
- `wikidata:PATH.jsonl[.gz|.bz2]` (optionally `#Q1,Q2` roots): Wikidata items, streamed.
"""

from __future__ import annotations

from pathlib import Path

from ontology.graph import DATA_DIR, ConceptGraph, OntologyError, load_bundled, load_yaml


def _split_roots(spec: str) -> tuple[str, list[str]]:
    if "#" in spec:
        spec, roots = spec.split("#", 1)
        return spec, [r.strip() for r in roots.split(",") if r.strip()]
    return spec, []


def load_source(source: str) -> ConceptGraph:
    """Load a concept graph from a source string (see the module docstring)."""
    spec, roots = _split_roots(source.strip())
    kind, _, arg = spec.partition(":")
    if kind == "wordnet":
        from ontology.loaders.wordnet import load_wordnet

        return load_wordnet(arg or None, roots=roots)
    if kind == "wikidata":
        from ontology.loaders.wikidata import load_wikidata

        if not arg:
            raise OntologyError("source 'wikidata:' needs a path, e.g. wikidata:items.jsonl.gz")
        return load_wikidata(arg, roots=roots)[0]
    if roots:
        raise OntologyError(f"source {source!r}: '#roots' is only for wordnet and wikidata sources")
    if kind == "bundled":
        return load_bundled(arg)
    if kind == "yaml":
        return load_yaml(arg)
    if (DATA_DIR / f"{spec}.yaml").exists():
        return load_bundled(spec)
    if Path(spec).suffix in (".yaml", ".yml"):
        return load_yaml(spec)
    if Path(spec).suffix in (".jsonl", ".json", ".gz", ".bz2"):
        from ontology.loaders.wikidata import load_wikidata

        return load_wikidata(spec)[0]
    available = sorted(p.stem for p in DATA_DIR.glob("*.yaml"))
    raise OntologyError(
        f"unknown ontology source {source!r}: use a bundled name {available}, a .yaml path, "
        "'wordnet[:DIR]' or 'wikidata:PATH.jsonl'"
    )
