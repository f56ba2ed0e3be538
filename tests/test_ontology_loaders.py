"""WordNet (database files) and Wikidata (JSON lines, streamed) loaders, including peak memory while
streaming a generated 1M-item file."""

import gzip
import json
from pathlib import Path

import pytest

from ontology.graph import OntologyError
from ontology.loaders import load_source
from ontology.loaders.wikidata import (LineErrors, WikidataLineError, iter_wikidata, load_wikidata,
                                       scan_wikidata)
from ontology.loaders.wordnet import load_wordnet, load_wordnet_with_report

DATA_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
00000001 03 n 01 entity 0 002 ~ 00000002 n 0000 ~ 00000005 n 0000 | that which exists
00000002 05 n 01 animal 0 002 @ 00000001 n 0000 ~ 00000003 n 0000 | a living organism
00000003 05 n 02 dog 0 domestic_dog 0 001 @ 00000002 n 0000 | a domesticated canine
00000004 05 n 01 cat 0 001 @ 00000002 n 0000 | a feline
00000005 18 n 01 dog 0 001 @ 00000001 n 0000 | a dull unattractive person
00000006 15 n 01 Paris 0 001 @i 00000001 n 0000 | capital of France
"""
INDEX_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
animal n 1 1 @ 1 0 00000002
cat n 1 1 @ 1 0 00000004
dog n 2 1 @ 2 0 00000003 00000005
domestic_dog n 1 1 @ 1 0 00000003
entity n 1 1 ~ 1 0 00000001
paris n 1 1 @i 1 0 00000006
"""


@pytest.fixture
def mini_wordnet(tmp_path):
    (tmp_path / "data.noun").write_text(DATA_NOUN)
    (tmp_path / "index.noun").write_text(INDEX_NOUN)
    return tmp_path


def test_wordnet_files_parse_into_hierarchy(mini_wordnet):
    g, report = load_wordnet_with_report(mini_wordnet)
    assert set(n.id for n in g) == {"entity.n.01", "animal.n.01", "dog.n.01", "cat.n.01", "dog.n.02"}
    dog = g.node("dog.n.01")
    assert dog.name == "dog" and dog.synonyms == ("domestic dog",) and dog.domains == ("animal",)
    assert dog.description == "a domesticated canine"
    assert g.ancestors("dog.n.01") == {"animal.n.01", "entity.n.01"}
    assert g.siblings("dog.n.01") == {"cat.n.01"}
    assert g.lookup("dog").id == "dog.n.01"  # the most frequent sense owns the lemma
    assert g.node("dog.n.02").name == "dog (entity)" and report.renamed == 1
    with_inst = load_wordnet(mini_wordnet, include_instances=True)
    assert with_inst.parents("paris.n.01") == ("entity.n.01",)
    assert set(n.id for n in load_wordnet(mini_wordnet, roots=["animal.n.01"])) == {
        "animal.n.01", "dog.n.01", "cat.n.01"}


def test_wordnet_errors_name_file_and_line(mini_wordnet, tmp_path):
    bad = mini_wordnet / "data.noun"
    bad.write_text(DATA_NOUN + "00000007 05 n zz broken\n")
    with pytest.raises(OntologyError, match=r"data.noun:8: malformed synset line"):
        load_wordnet(mini_wordnet)
    with pytest.raises(OntologyError, match="wordnet-base"):
        load_wordnet(tmp_path / "nowhere")


@pytest.mark.slow
def test_real_wordnet_noun_hierarchy():
    g = load_source("wordnet#canine.n.02")
    dog = g.node("dog.n.01")
    assert dog.name == "dog" and "domestic dog" in dog.synonyms and dog.domains == ("animal",)
    assert "canine.n.02" in g.ancestors("dog.n.01")
    assert {"wolf.n.01", "fox.n.01"} <= g.siblings("dog.n.01")
    assert len(g) > 100


def _compact(qid, label, parents=(), aliases=(), instance_of=()):
    return json.dumps({"id": qid, "label": label, "aliases": list(aliases), "subclass_of": list(parents),
                       "instance_of": list(instance_of)})


def _dump_entity(qid, label, parents=(), aliases=()):
    claims = {"P279": [{"mainsnak": {"snaktype": "value", "datavalue": {"value": {"id": p}}}} for p in parents]}
    claims["P279"].append({"mainsnak": {"snaktype": "novalue"}})
    return json.dumps({"id": qid, "type": "item", "labels": {"en": {"language": "en", "value": label}},
                       "aliases": {"en": [{"language": "en", "value": a} for a in aliases]},
                       "descriptions": {"en": {"language": "en", "value": f"about {label}"}},
                       "claims": claims})


def test_wikidata_both_line_shapes(tmp_path):
    dump = tmp_path / "dump.json"
    dump.write_text("[\n" + ",\n".join([_dump_entity("Q1", "vehicle"), _dump_entity("Q2", "boat", ["Q1"],
                    ["vessel"])]) + "\n]\n")
    recs = list(iter_wikidata(dump))
    assert [r.id for r in recs] == ["Q1", "Q2"]
    assert recs[1].subclass_of == ("Q1",) and recs[1].aliases == ("vessel",) and recs[1].lineno == 3
    assert recs[1].description == "about boat"
    gz = tmp_path / "items.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(_compact("Q1", "vehicle") + "\n" + _compact("Q2", "boat", ["Q1"]) + "\n")
    assert [r.label for r in iter_wikidata(gz)] == ["vehicle", "boat"]


def test_wikidata_malformed_lines_report_line_numbers(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b"\n".join([
        _compact("Q1", "vehicle").encode(),
        b'{"id": "Q2", "label": "boat", "subclass_of": ["Q1"]',  # truncated JSON
        b'{"label": "no id"}',
        _compact("Q3", "canoe", ["Q2"]).encode(),
        b'{"id": "Q4", "label": "x", "aliases": [1, 2]}',
        b'{"id": "Q5", "label": "caf\xe9"}',  # not UTF-8
        b"[1, 2]",
    ]) + b"\n")
    with pytest.raises(WikidataLineError) as info:
        list(iter_wikidata(f))
    assert info.value.lineno == 2 and "bad.jsonl:2" in str(info.value)
    errors = LineErrors()
    assert [r.id for r in iter_wikidata(f, errors=errors)] == ["Q1", "Q3"]
    assert [n for n, _ in errors.first] == [2, 3, 5, 6, 7] and errors.count == 5
    assert "missing 'id'" in errors.first[1][1] and "UnicodeDecodeError" in errors.first[3][1]
    scan = scan_wikidata(f)
    assert scan.records == 2 and scan.errors.count == 5


def test_wikidata_graph_under_roots(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text("\n".join([
        _compact("Q1", "vehicle"),
        _compact("Q2", "boat", ["Q1"], ["vessel"]),
        _compact("Q3", "canoe", ["Q2"]),
        _compact("Q4", "Titanic", instance_of=["Q2"]),  # an individual, not a class
        _compact("Q5", "animal"),
        _compact("Q6", "dog", ["Q5", "Q9"]),  # Q9 is outside the file
        _compact("Q7", "boat", ["Q2"]),  # same label as Q2
        _compact("Q8", "kayak", ["Q3", "Q9c", "Q8x"]),  # Q8x is outside the file
        _compact("Q9c", "loop", ["Q8"]),  # Q8 -> Q9c -> Q8 is a cycle
        _compact("Q3", "canoe again", ["Q1"]),  # a repeated id: the first record wins
    ]) + "\n")
    g, report = load_wikidata(f, roots=["Q2"])
    assert {n.id for n in g} == {"Q2", "Q3", "Q7", "Q8", "Q9c"}
    assert report.dropped_cycle_edges == 1 and g.node("Q3").name == "canoe"
    assert g.node("Q2").synonyms == ("vessel",) and g.node("Q7").name == "boat (Q7)"
    assert {"Q3", "Q2"} <= g.ancestors("Q8")
    assert load_source(f"wikidata:{f}#Q5").parents("Q6") == ("Q5",)  # Q9 is dropped
    full, _ = load_wikidata(f, include_instances=True)
    assert "Q4" in full and full.parents("Q4") == ("Q2",)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read RSS")
def test_wikidata_streams_1m_items_in_constant_memory(tmp_path):
    f = tmp_path / "big.jsonl"
    n = 1_000_000
    with f.open("w") as fh:  # the official dump's array layout: "[", one item per line with ",", "]"
        fh.write("[\n")
        for start in range(0, n, 100_000):
            fh.write("".join(
                f'{{"id":"Q{i}","label":"concept {i}","aliases":["c{i}"],"subclass_of":["Q{i // 10}"]}},\n'
                for i in range(start, start + 100_000)))
        fh.write("]\n")
    size = f.stat().st_size
    base = _rss_bytes()
    peak = base
    count = 0
    for rec in iter_wikidata(f):
        count += 1
        if count % 50_000 == 0:
            peak = max(peak, _rss_bytes())
    growth = peak - base
    print(f"streamed {count} Wikidata items from a {size / 1e6:.0f} MB file: RSS growth {growth / 1e6:.1f} MB")
    assert count == n and rec.id == f"Q{n - 1}"
    assert growth < 32e6 and growth < size / 3
