"""Proposers behind one config-chosen interface: the ontology sampler and the model-in-the-loop proposer."""

import pytest
from pydantic import ValidationError

from engine.world.phrases import semantics
from engine.world.samples import generate_scenes
from ontology.coverage import CoverageTracker
from ontology.graph import load_bundled
from ontology.proposers import ProposalRequest, build_proposer, parse_proposer_config
from ontology.proposers.sampler import OntologySampler, SamplerSettings
from tests.ontology_fakes import CountingPredictor, GTOffsetPredictor, tiny_predictor

SHAPES = {"kind": "ontology", "source": "shapes", "per_image": 12}


def test_sampler_is_deterministic_per_media_and_parses_in_the_world():
    p = build_proposer(SHAPES)
    a = p.propose([ProposalRequest("img-1", domain="base"), ProposalRequest("img-2", domain="base")])
    b = build_proposer(SHAPES).propose([ProposalRequest("img-1", domain="base")])
    assert [x.phrase for x in a[0].proposals] == [x.phrase for x in b[0].proposals]
    assert [x.phrase for x in a[0].proposals] != [x.phrase for x in a[1].proposals]
    sem = semantics()
    for batch in a:
        assert len(batch.proposals) == 12
        for prop in batch.proposals:
            concept = sem.parse(prop.phrase)  # every sampled phrase is in the world's grammar
            assert prop.source == "ontology" and prop.node_id == concept.head


def test_sampler_respects_domain_and_templates():
    settings = SamplerSettings(noun_root="shape", facets=["colour"], templates=["{colour} {noun}"])
    p = OntologySampler(load_bundled("shapes"), settings, per_image=30)
    phrases = [x.phrase for x in p.propose_one(ProposalRequest("n", domain="night")).proposals]
    assert phrases and all(len(ph.split()) >= 2 for ph in phrases)
    assert not any(ph.endswith("square") for ph in phrases)  # squares exist only in the base domain
    with pytest.raises(ValueError, match="no {noun} slot"):
        OntologySampler(load_bundled("shapes"), SamplerSettings(templates=["{colour}"], facets=["colour"]))
    with pytest.raises(ValueError, match="not in facets"):
        OntologySampler(load_bundled("shapes"), SamplerSettings(templates=["{texture} {noun}"]))


def test_sampler_targets_starved_concepts():
    g = load_bundled("common_objects")
    cov = CoverageTracker(g)
    for nid in g.leaves("animal"):
        if nid != "zebra":
            cov.add(nid, "positive", 1000)
    settings = SamplerSettings(noun_root="animal", templates=["{noun}"])
    p = OntologySampler(g, settings, per_image=3, coverage=cov)
    firsts = [p.propose_one(ProposalRequest(f"m{i}")).proposals[0].node_id for i in range(20)]
    assert firsts.count("zebra") >= 10


def test_config_is_validated_with_field_names():
    with pytest.raises(ValidationError, match="kind"):
        parse_proposer_config({"kind": "telepathy"})
    with pytest.raises(ValidationError, match="per_image"):
        parse_proposer_config({"kind": "ontology", "per_image": 0})
    with pytest.raises(ValidationError, match="base_url"):
        parse_proposer_config({"kind": "openai", "model": "m"})
    with pytest.raises(ValidationError, match="bogus"):
        parse_proposer_config({"kind": "ontology", "bogus": 1})
    with pytest.raises(ValueError, match="needs a predictor"):
        build_proposer({"kind": "model"})


def test_model_in_the_loop_keeps_likely_phrases_and_relatives():
    sem = semantics()
    scene = next(generate_scenes(1, seed=5, domain="base", image_size=128))
    predictor = CountingPredictor(GTOffsetPredictor(scene, sem))
    cfg = {"kind": "model", "source": "shapes", "candidates": 40, "keep_top": 4, "per_image": 20,
           "relatives_per_phrase": 2}
    p = build_proposer(cfg, predictor=predictor)
    batch = p.propose_one(ProposalRequest(scene.key, image=scene.image, domain="base"))
    assert predictor.calls == [(scene.key, 40)]  # one call per image: vision features computed once
    present_shapes = {o.attrs["shape"] for o in scene.objects}
    scored = [x for x in batch.proposals if x.relation is None]
    assert 1 <= len(scored) <= 4
    for prop in scored:  # the stand-in fires only on present shapes
        assert present_shapes & sem.graph.closure(sem.parse(prop.phrase).head)
    assert any(x.relation in ("sibling", "cousin") for x in batch.proposals)
    assert any(d.reason.startswith("unlikely") for d in batch.dropped)
    assert p.stats["scored"] == 40
    no_image = p.propose_one(ProposalRequest("x"))
    assert not no_image.proposals and no_image.dropped[0].reason.startswith("error")


@pytest.mark.slow
def test_model_in_the_loop_with_the_real_tiny_predictor():
    scene = next(generate_scenes(1, seed=2, domain="base", image_size=224))
    predictor = CountingPredictor(tiny_predictor())
    p = build_proposer({"kind": "model", "source": "shapes", "candidates": 24, "presence_threshold": 0.4,
                        "keep_top": 3, "relatives_per_phrase": 1}, predictor=predictor)
    batch = p.propose_one(ProposalRequest(scene.key, image=scene.image, domain="base"))
    assert predictor.calls == [(scene.key, 24)]
    # the untrained model's presence is ~0.5 for everything: it keeps keep_top phrases (noise) plus relatives
    assert 1 <= len([x for x in batch.proposals if x.relation is None]) <= 3
    assert all(0.0 <= (x.score or 0) <= 1.0 for x in batch.proposals)
