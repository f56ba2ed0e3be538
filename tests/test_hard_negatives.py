"""Hard-negative mining on the shapes world, where ground truth is exact.

The adversarial check needs a model that predicts something. The tiny SAM 3 here is untrained, so
two kinds of predictor are used, and said so:
- `GTOffsetPredictor` (tests/ontology_fakes.py) is a stand-in, not a model: it returns the GT masks
  of objects whose shape matches the phrase's noun, ignoring colour/pattern/size, shifted 2 px. It
  tests the check's *logic* (discard when nothing is predicted, keep on overlap, IoU threshold,
  budget).
- the real tiny predictor (untrained) checks the wiring with a real model end to end.
"""

import numpy as np
import pytest

from engine.world.phrases import semantics
from engine.world.samples import generate_scenes, scene_pairs
from ontology.graph import load_bundled
from ontology.hard_negatives import HardNegativeMiner
from ontology.proposers import build_proposer
from storage.masks import instance_to_mask
from tests.ontology_fakes import CountingPredictor, FakeChatServer, GTOffsetPredictor, tiny_predictor


@pytest.fixture(scope="module")
def graph():
    return load_bundled("shapes")


def _positives(scene):
    """The world's standard positive phrases of a scene with their exact GT masks."""
    return {p.phrase: [instance_to_mask(i) for i in p.instances]
            for p in scene_pairs(scene, negatives_per_image=0) if p.label == "positive"}


def _scenes(n, size=128):
    return [*generate_scenes(n, seed=11, domain="base", image_size=size),
            *generate_scenes(n, seed=12, domain="night", image_size=size)]


def test_mined_candidates_are_all_true_negatives(graph):
    sem = semantics()
    miner = HardNegativeMiner(graph, {"per_image": 10_000, "max_candidates": 10_000})
    total, reasons = 0, set()
    for scene in _scenes(4):
        mined = miner.mine(scene.key, None, _positives(scene), domain=scene.domain)
        for d in mined.decisions:
            assert sem.select(d.candidate.phrase, scene.objects) == [], (scene.key, d.candidate)
            assert d.candidate.origin in ("sibling", "cousin", "uncle", "modifier")
        total += len(mined.decisions)
        reasons |= {f.reason.split(":")[0] for f in mined.filtered}
    assert total > 200
    assert "may_be_present" in reasons  # e.g. "polygon" when a triangle is present is never mined


def test_without_masks_each_positive_is_its_own_instance(graph):
    miner = HardNegativeMiner(graph)
    cands, dropped = miner.candidates(["red triangle"], domain="base")
    phrases = {c.phrase for c in cands}
    assert {"blue triangle", "red square", "square", "circle"} <= phrases
    assert "triangle" not in phrases and "red polygon" not in phrases and "polygon" not in phrases
    assert "diamond" not in phrases  # night-only shape, base domain
    # with a bare "square" positive, any square may be red: "red square" is not a safe negative
    cands, dropped = miner.candidates(["red triangle", "square"], domain="base")
    assert "red square" not in {c.phrase for c in cands} and "blue triangle" in {c.phrase for c in cands}
    assert "may_be_present: compatible with 'square'" in {d.reason for d in dropped}


def test_adversarial_check_logic_with_gt_stand_in(graph):
    """Stand-in predictor (colour-blind GT masks, shifted): tests the check's logic, not a model."""
    sem = semantics()
    kept_total = 0
    for scene in _scenes(3):
        predictor = CountingPredictor(GTOffsetPredictor(scene, sem))
        miner = HardNegativeMiner(graph, {"per_image": 100, "iou_threshold": 0.5}, predictor=predictor)
        positives = _positives(scene)
        mined = miner.mine(scene.key, scene.image, positives, domain=scene.domain)
        assert len(predictor.calls) == 1  # all candidates of an image in one predictor call
        present = {o.attrs["shape"] for o in scene.objects}
        for d in mined.decisions:
            cand = sem.parse(d.candidate.phrase)
            assert sem.select(cand, scene.objects) == []  # a true negative ...
            src_shapes = {o.attrs["shape"] for o in sem.select(d.candidate.positive, scene.objects)}
            confusable = bool(sem.graph.closure(cand.head) & src_shapes)
            if not sem.graph.closure(cand.head) & present:
                assert not d.kept and d.reason.startswith("easy")  # ... the model sees nothing
            if d.kept:
                assert confusable and d.iou >= 0.5 and d.reason.startswith("confusable")
            elif confusable:
                assert d.reason.startswith(("elsewhere", "easy"))
        kept = [d for d in mined.decisions if d.kept]
        assert kept == mined.decisions[: len(kept)]  # most confusable first
        assert [d.iou for d in kept] == sorted((d.iou for d in kept), reverse=True)
        kept_total += len(kept)
    assert kept_total > 10  # attribute swaps ("blue triangle" for a red triangle) are kept


def test_iou_threshold_and_budget(graph):
    sem = semantics()
    scene = _scenes(1)[0]
    positives = _positives(scene)
    strict = HardNegativeMiner(graph, {"iou_threshold": 0.999}, predictor=GTOffsetPredictor(scene, sem))
    assert not strict.mine(scene.key, scene.image, positives, "base").hard_negatives
    budget = HardNegativeMiner(graph, {"per_image": 3}, predictor=GTOffsetPredictor(scene, sem))
    mined = budget.mine(scene.key, scene.image, positives, "base")
    assert len(mined.hard_negatives) == 3
    assert any(d.reason.startswith("over_budget") for d in mined.decisions)
    unchecked = HardNegativeMiner(graph, {"per_image": 5}).mine(scene.key, None, positives, "base")
    assert len(unchecked.hard_negatives) == 5 and unchecked.decisions[0].reason == "unchecked: no model"


def test_llm_candidates_are_filtered_like_ontology_ones(graph):
    scene = _scenes(1)[0]
    sem = semantics()
    positives = _positives(scene)
    first = sorted(positives)[0]
    reply = '{"phrases": ["%s", "%s", "shape", "zigzag spaceship", "it"]}' % (first, "orange cross")
    with FakeChatServer(lambda body: reply) as server:
        llm = build_proposer({"kind": "openai", "base_url": server.base_url, "model": "m",
                              "api_key_env": None})
        miner = HardNegativeMiner(graph, {"relation_kinds": [], "swap_modifiers": False,
                                          "llm_positives_per_image": 1, "per_image": 50}, llm=llm)
        mined = miner.mine(scene.key, None, positives, "base")
    phrases = {d.candidate.phrase for d in mined.decisions}
    assert "shape" not in phrases and first not in phrases
    assert all(d.candidate.origin == "llm" for d in mined.decisions)
    if not sem.select("orange cross", scene.objects):
        assert "orange cross" in phrases
    assert "zigzag spaceship" in phrases  # unknown to the ontology: kept for the model to judge
    assert any(f.reason.startswith("non_groundable") for f in mined.filtered)  # "it"


@pytest.mark.slow
def test_adversarial_check_with_the_real_tiny_predictor(graph):
    sem = semantics()
    scene = next(generate_scenes(1, seed=4, domain="base", image_size=224))
    positives = _positives(scene)
    predictor = CountingPredictor(tiny_predictor())
    # the untrained model scores ~0.25 < 0.5 everywhere: it confuses nothing, every candidate is easy
    miner = HardNegativeMiner(graph, {"max_candidates": 16}, predictor=predictor)
    mined = miner.mine(scene.key, scene.image, positives, "base")
    assert len(predictor.calls) == 1 and predictor.calls[0][1] == len(mined.decisions) == 16
    assert not mined.hard_negatives and all(d.reason.startswith("easy") for d in mined.decisions)
    # counting its low-score predictions exercises the overlap path on real model masks
    low = HardNegativeMiner(graph, {"max_candidates": 16, "score_threshold": 0.2, "iou_threshold": 0.05},
                            predictor=tiny_predictor(score_threshold=0.2))
    decisions = low.mine(scene.key, scene.image, positives, "base").decisions
    assert any(d.n_predictions for d in decisions)
    for d in decisions:
        assert sem.select(d.candidate.phrase, scene.objects) == []
        assert 0.0 <= d.iou <= 1.0 and np.isfinite(d.best_score)
        assert d.kept == (d.iou >= 0.05 and d.n_predictions > 0) or d.reason.startswith("over_budget")
