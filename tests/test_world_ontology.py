"""The concept graph loader and the bundled shapes ontology."""

import pytest

from engine.world.vocab import check_renderable, domains, vocabulary, world_graph
from ontology.graph import ConceptGraph, OntologyError, load_bundled, load_yaml


def test_shapes_hierarchy():
    g = load_bundled("shapes")
    assert g.closure("polygon") == {"polygon", "triangle", "square", "hexagon", "diamond"}
    assert g.descendants("round_shape") == {"circle", "ring", "crescent"}
    assert g.ancestors("triangle") == {"polygon", "shape"}
    assert g.siblings("triangle") == {"square", "hexagon", "diamond"}
    assert g.siblings("polygon") == {"round_shape", "star", "cross"}
    assert g.is_a("ring", "shape") and not g.is_a("ring", "polygon")
    assert set(g.roots()) == {"shape", "colour", "pattern", "size"}
    assert g.lookup("Round  Shape").id == "round_shape"
    assert g.lookup("violet").id == "purple"
    assert g.lookup("elephant") is None


def test_domains_come_from_the_ontology():
    assert set(domains()) == {"base", "night"}
    base, night = vocabulary("base"), vocabulary("night")
    assert len(base.shape) >= 7 and len(base.colour) == 8 and len(base.pattern) == 4 and len(base.size) == 2
    assert {"solid", "striped", "dotted", "checkered"} == set(base.pattern)
    assert {"crescent", "diamond"} <= set(night.shape) - set(base.shape)
    assert {"wavy", "zigzag"} <= set(night.pattern) - set(base.pattern)
    assert check_renderable() == []


def test_roundtrip_and_multiple_parents():
    g = ConceptGraph.from_dict({"nodes": [
        {"id": "a"}, {"id": "b", "parents": ["a"]}, {"id": "c", "parents": ["a"]},
        {"id": "d", "parents": ["b", "c"], "synonyms": ["dee"]}]})
    assert g.ancestors("d") == {"a", "b", "c"}
    assert g.siblings("d") == frozenset()
    assert g.siblings("b") == {"c"}
    assert g.leaves() == ("d",)
    again = ConceptGraph.from_dict(g.to_dict())
    assert [n.id for n in again] == [n.id for n in g] and again.ancestors("d") == g.ancestors("d")


@pytest.mark.parametrize("doc, message", [
    ({"nodes": [{"id": "a", "parents": ["zz"]}]}, "unknown parent 'zz'"),
    ({"nodes": [{"id": "a", "parents": ["b"]}, {"id": "b", "parents": ["a"]}]}, "cycle"),
    ({"nodes": [{"id": "a"}, {"id": "a"}]}, "duplicate node id 'a'"),
    ({"nodes": [{"id": "a", "synonyms": ["x"]}, {"id": "b", "synonyms": ["X"]}]}, "names both"),
    ({"nodes": [{"id": "a", "colour": "red"}]}, "unknown field"),
    ({"nodes": [{"id": "a", "synonyms": "x"}]}, "'synonyms' must be a list"),
    ({"nodes": []}, "non-empty list"),
])
def test_bad_ontologies_name_the_problem(doc, message):
    with pytest.raises(OntologyError, match=message):
        ConceptGraph.from_dict(doc)


def test_load_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [ {id: a\n")
    with pytest.raises(OntologyError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(OntologyError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(OntologyError, match="no bundled ontology 'nope'"):
        load_bundled("nope")
    with pytest.raises(OntologyError, match="no node 'zebra'"):
        world_graph().ancestors("zebra")
