"""Relative queries (siblings, cousins, uncles), domain subgraphs, stats, robust graph building and
source dispatch over the bundled ontologies."""

import pytest

from ontology.graph import OntologyError, load_bundled
from ontology.loaders import load_source
from ontology.loaders.common import RawConcept, build_graph, display_phrase, restrict_to_roots
from ontology.relations import (cousins, domain_subgraph, graph_stats, relatives, subgraph, uncles)


@pytest.fixture(scope="module")
def common():
    return load_bundled("common_objects")


def test_paper_example_relatives(common):
    # "gray Siamese cat" -> "tabby cat" (sibling), "Chihuahua" (cousin), "dog" (uncle)
    rel = {r.node_id: r.relation for r in relatives(common, "siamese_cat")}
    assert rel["tabby_cat"] == "sibling"
    assert rel["chihuahua"] == "cousin"
    assert rel["dog"] == "uncle"
    assert "cat" not in rel and "animal" not in rel and "siamese_cat" not in rel


def test_cousins_and_uncles_exclude_is_a_relations(common):
    assert "dog" in uncles(common, "tabby_cat")
    assert "mammal" not in uncles(common, "tabby_cat")
    assert {"chihuahua", "labrador", "poodle"} <= cousins(common, "tabby_cat")
    assert not cousins(common, "tabby_cat") & common.siblings("tabby_cat")
    for nid in ("canoe", "mug", "taxi"):
        for r in relatives(common, nid):
            assert not common.is_a(nid, r.node_id) and not common.is_a(r.node_id, nid)


def test_relatives_kinds_and_domain_filter(common):
    only_sib = relatives(common, "canoe", kinds=["sibling"])
    assert {r.relation for r in only_sib} == {"sibling"}
    kitchen = relatives(common, "mug", domain="kitchen")
    assert kitchen and all(common.in_domain(r.node_id, "kitchen") for r in kitchen)
    with pytest.raises(ValueError, match="unknown relation"):
        relatives(common, "mug", kinds=["nephew"])


def test_shapes_relatives():
    g = load_bundled("shapes")
    rel = {r.node_id: r.relation for r in relatives(g, "triangle")}
    assert rel["square"] == "sibling" and rel["circle"] == "cousin" and rel["star"] == "uncle"
    night = {r.node_id for r in relatives(g, "triangle", domain="night")}
    assert "square" not in night and "diamond" in night  # squares only exist in the base domain


def test_domain_subgraph_keeps_connecting_ancestors(common):
    kitchen = domain_subgraph(common, "kitchen")
    assert "mug" in kitchen and "cup" in kitchen and "kitchenware" in kitchen
    assert "school_bus" not in kitchen
    assert kitchen.ancestors("mug") == common.ancestors("mug")
    with pytest.raises(ValueError, match="no domain 'moon'"):
        domain_subgraph(common, "moon")
    animals = subgraph(common, ["animal"])
    assert animals.roots() == ("animal",) and "car" not in animals


def test_graph_stats(common):
    s = graph_stats(common)
    assert s["nodes"] == len(common) and s["roots"] == 4 and s["max_depth"] == 4
    assert s["domains"]["kitchen"] > 0 and s["surface_forms"] > s["nodes"]


def test_build_graph_resolves_clashes_cycles_and_dangling_parents():
    raw = [
        RawConcept("a", ["bank", "shore"], ["root"], hint="slope"),
        RawConcept("b", ["bank", "depository"], ["root", "missing"]),
        RawConcept("c", ["bank"], ["b"], hint="institution"),
        RawConcept("root", ["entity"], ["c"]),  # closes a cycle root -> c -> b -> root
        RawConcept("x", ["  "], []),
    ]
    g, report = build_graph(raw, "t", preferred_owner={"bank": "b"})
    assert g.lookup("bank").id == "b"
    assert g.node("a").name == "shore" and g.node("a").attrs["other_forms"] == ["bank"]
    assert g.node("c").name == "bank (institution)" and display_phrase(g.node("c")) == "bank"
    assert report.dropped_parents == 1 and report.dropped_cycle_edges == 1 and report.nameless == 1
    assert report.renamed == 1 and report.nodes == 4


def test_restrict_to_roots():
    raw = [RawConcept("r", ["r"]), RawConcept("a", ["a"], ["r"]), RawConcept("b", ["b"], ["a"]),
           RawConcept("z", ["z"])]
    assert [c.id for c in restrict_to_roots(raw, ["a"])] == ["a", "b"]
    with pytest.raises(OntologyError, match="not in the source"):
        restrict_to_roots(raw, ["nope"])


def test_load_source_dispatch(tmp_path):
    assert load_source("shapes").name == "shapes"
    assert load_source("bundled:common_objects").name == "common_objects"
    y = tmp_path / "g.yaml"
    y.write_text("name: g\nnodes:\n  - {id: thing}\n  - {id: cup, parents: [thing]}\n")
    assert "cup" in load_source(str(y)) and "cup" in load_source(f"yaml:{y}")
    with pytest.raises(OntologyError, match="unknown ontology source"):
        load_source("nonsense")
    with pytest.raises(OntologyError, match="needs a path"):
        load_source("wikidata:")
    with pytest.raises(OntologyError, match="only for wordnet and wikidata"):
        load_source("shapes#shape")
