"""The learned verifier backend: trained from simulated annotators' decision logs on the shapes world.

Most tests use the GT-perturbed STAND-IN for predictor outputs (`tests.verifiers_support`, not a
model) so training sees real signal in seconds; `test_real_tiny_predictor_*` runs the real tiny
SAM 3 predictor (untrained) through `FeaturePredictor` / `ContextProvider` end to end.
"""

import numpy as np
import pytest

from engine.humans.simulated import SimulatedAnnotators
from storage.masks import mask_to_instance
from tests.verifiers_support import simulate_decisions, standin_context, world_pairs
from verifiers.base import EVRequest, MVRequest, presence_requests
from verifiers.context import ContextProvider, FeaturePredictor, StaticContexts
from verifiers.evaluation import evaluate_verifier, run_examples
from verifiers.examples import build_examples
from verifiers.features import EV_FEATURES, MV_FEATURES, ev_features, mv_features
from verifiers.labels import EV_LABELS, MV_LABELS
from verifiers.store import VerifierSet, load_verifiers, publish, registry
from verifiers.training import train_verifiers

WHOLE = ["scene", "background"]  # simulated raters answer whole_image for these


def _slice(n, start, rng):
    data = world_pairs(n, seed=3, negatives=4, max_positives=6, start=start)
    ctx, images = {}, {}
    for scene, png, pairs in data:
        images[scene.key] = png
        for phrase in [p.phrase for p in pairs] + WHOLE:
            ctx[(scene.key, phrase)] = standin_context(scene, phrase, rng)
    return data, ctx, images


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    _, tr_ctx, tr_img = _slice(10, 0, rng)
    te_data, te_ctx, te_img = _slice(5, 100, rng)
    humans = SimulatedAnnotators(seed=1)
    train_ex = build_examples(simulate_decisions(tr_ctx, humans))
    test_ex = build_examples(simulate_decisions(te_ctx, humans))
    contexts = StaticContexts({**tr_ctx, **te_ctx}, "standin")
    images = {**tr_img, **te_img}
    vset = train_verifiers(
        train_ex, contexts=contexts, media=images.get, embedder="hashing", dims=8
    )
    return {
        "vset": vset,
        "test": test_ex,
        "contexts": contexts,
        "images": images,
        "te_data": te_data,
        "te_ctx": te_ctx,
    }


def test_learned_verifiers_match_or_beat_held_out_humans(trained):
    vset, test = trained["vset"], trained["test"]
    assert (
        vset.info["examples"]["mv"]["from_corrections"] > 0
        and vset.info["examples"]["ev"]["from_corrections"] > 0
    )
    for task, floor in (("mv", 0.85), ("ev", 0.8)):
        ver = vset.verifier(task, trained["contexts"], trained["images"].get)
        rep = evaluate_verifier(ver, test.of(task))
        assert rep["errors"] == 0 and rep["judgements"] > 50
        assert rep["ai_accuracy"] >= floor, rep
        assert rep["ai_accuracy"] >= rep["human_accuracy"] - 0.03, (
            rep
        )  # humans here err 10 % of the time
        assert rep["reliability"]["ece"] < 0.1
        thr = rep["thresholds"]
        assert thr["coverage"] > 0.1 and (thr["accept_precision"] or 1) >= 0.98


def test_verdicts_cover_the_label_set_with_version_ids(trained):
    vset = trained["vset"]
    mv = vset.verifier("mv", trained["contexts"], trained["images"].get)
    ex = trained["test"].mv[:5]
    verdicts = run_examples(mv, ex)
    for v, e in zip(verdicts, ex):
        assert list(v.probs) == list(MV_LABELS) and sum(v.probs.values()) == pytest.approx(1)
        assert v.probs["accept_as_text"] == 0  # never seen in training: probability 0
        assert v.verifier == "unsaved/mv" and v.request_id == e.key
    # whole-image phrases are learned from the phrase features
    key = next(k for k in trained["te_ctx"] if k[1] == "background")
    ev = vset.verifier("ev", trained["contexts"], trained["images"].get)
    (v,) = ev.verify(presence_requests([key]))
    assert v.label == "whole_image" and list(v.probs) == list(EV_LABELS)
    assert v.presence == pytest.approx(1 - v.p("accept"))


def test_ev_presence_separates_positive_from_negative_pairs(trained):
    keys, truth = [], []
    for scene, _png, pairs in trained["te_data"]:
        for p in pairs:
            keys.append((scene.key, p.phrase))
            truth.append(p.label == "positive")
    ev = trained["vset"].verifier("ev", trained["contexts"], trained["images"].get)
    presence = np.array([v.presence for v in ev.verify(presence_requests(keys))])
    truth = np.array(truth)
    assert presence[truth].mean() > presence[~truth].mean() + 0.3


def test_save_load_and_registry_versions(trained, tmp_path):
    vset = trained["vset"]
    reqs = [MVRequest(e.media_id, e.phrase, e.masks[0]) for e in trained["test"].mv[:6]]
    mv = vset.verifier("mv", trained["contexts"], trained["images"].get)
    before = [v.probs for v in mv.verify(reqs)]
    folder = vset.save(tmp_path / "vset")
    loaded = VerifierSet.load(folder)
    assert loaded.version.startswith("dir:vset@") and loaded.tasks == ["mv", "ev"]
    again = loaded.verifier("mv", trained["contexts"], trained["images"].get).verify(reqs)
    assert [v.probs for v in again] == before and again[0].verifier == f"{loaded.version}/mv"
    reg = registry(str(tmp_path / "root"))
    assert publish(vset, "shapes-verifiers", reg) == "shapes-verifiers:v0001"
    assert publish(loaded, "shapes-verifiers", reg) == "shapes-verifiers:v0002"
    v1 = load_verifiers("shapes-verifiers:1", reg)
    assert v1.version == "shapes-verifiers:v0001"
    probs = v1.verifier("mv", trained["contexts"], trained["images"].get).verify(reqs)
    assert [v.probs for v in probs] == before and probs[0].verifier == "shapes-verifiers:v0001/mv"
    assert load_verifiers("shapes-verifiers", reg).version == "shapes-verifiers:v0002"  # latest
    with pytest.raises(Exception, match="not a folder"):
        load_verifiers("shapes-verifiers")


def test_a_bad_item_is_an_error_verdict_not_a_failed_batch(trained):
    vset = trained["vset"]
    e = trained["test"].mv[0]
    ver = vset.verifier("mv", trained["contexts"], trained["images"].get)
    wrong_size = mask_to_instance(np.ones((10, 10), bool), source="human")
    out = ver.verify(
        [
            MVRequest(e.media_id, e.phrase, e.masks[0]),
            MVRequest("nowhere", "cat", e.masks[0], image=b"not an image"),
            MVRequest(e.media_id, e.phrase, wrong_size),
        ]
    )
    assert out[0].error is None and out[0].label in MV_LABELS
    assert "cannot decode" in out[1].error and out[1].probs == {}
    assert "does not match" in out[2].error
    ev = vset.verifier("ev", trained["contexts"], trained["images"].get)
    (bad_ev,) = ev.verify([EVRequest(e.media_id, e.phrase, [e.masks[0], wrong_size])])
    assert "does not match" in bad_ev.error


def test_features_reflect_mask_quality():
    ((scene, _png, pairs),) = world_pairs(1, seed=3, negatives=0, max_positives=3)
    pair = pairs[0]
    ctx = standin_context(scene, pair.phrase, np.random.default_rng(5))
    good = ctx.instances[0].mask()
    bad = np.roll(good, 12, axis=0)
    f_good = dict(
        zip(MV_FEATURES, mv_features(good, mask_to_instance(good, "x").rle, ctx, scene.image))
    )
    f_bad = dict(
        zip(MV_FEATURES, mv_features(bad, mask_to_instance(bad, "x").rle, ctx, scene.image))
    )
    assert f_good["best_iou"] == pytest.approx(1.0) and f_bad["best_iou"] < 0.6
    assert f_good["matched_score"] == pytest.approx(ctx.instances[0].score)
    assert f_good["area_frac"] == pytest.approx(good.mean())
    assert len(f_good) == len(MV_FEATURES)
    union_masks = [i.mask() for i in ctx.instances]
    none = dict(zip(EV_FEATURES, ev_features([], [], ctx)))
    covered = dict(
        zip(
            EV_FEATURES,
            ev_features(union_masks, [mask_to_instance(m, "x").rle for m in union_masks], ctx),
        )
    )
    assert none["n_masks"] == 0 and covered["n_masks"] == len(union_masks)
    assert covered["n_unmatched_pred"] == 0 and none["n_unmatched_pred"] >= 1
    assert covered["unexplained_semantic"] < none["unexplained_semantic"]
    assert np.isnan(ev_features([], [], None)[0])  # no context: missing values


def test_real_tiny_predictor_contexts_feed_the_verifiers(trained):
    """Through the real (untrained) tiny SAM 3: FeaturePredictor keeps the predictor's outputs and adds
    per-query mask stability and the semantic map; the verifiers run on contexts it computes."""
    from model.predictor import Predictor
    from tests.ontology_fakes import tiny_predictor

    loaded = tiny_predictor().loaded
    data = world_pairs(1, seed=3, negatives=1, max_positives=2, start=100)
    items = [(s.key, png, [p.phrase for p in pairs]) for s, png, pairs in data]
    plain = Predictor(loaded, score_threshold=0.0).predict(items)
    fp = FeaturePredictor(loaded, score_threshold=0.0)
    feat = fp.predict(items)
    for a, b in zip(plain, feat):
        for pa, pb in zip(a.pairs, b.pairs):
            assert pa.scores == pb.scores and pa.presence == pb.presence
            assert [i.rle for i in pa.instances] == [i.rle for i in pb.instances]
    assert len(fp.extras) == sum(len(i[2]) for i in items)
    provider = ContextProvider(loaded, score_threshold=0.0, model_version="tiny-untrained")
    ctxs = provider.contexts(items)
    q = loaded.model.config.detr_decoder_config.num_queries
    for ctx in ctxs.values():
        assert ctx.stability.shape == (q,) and ((ctx.stability >= 0) & (ctx.stability <= 1)).all()
        assert ctx.semantic_map.ndim == 2 and ctx.model_version == "tiny-untrained"
        assert len(ctx.instances) == q and not np.isnan(ctx.instances[0].stability)
    images = {s.key: png for s, png, _ in data}
    ver = trained["vset"].verifier(
        "ev", ContextProvider(loaded, model_version="tiny-untrained"), images.get
    )
    keys = [(s.key, p.phrase) for s, _, pairs in data for p in pairs]
    out = ver.verify([EVRequest(m, p, []) for m, p in keys])
    assert all(v.error is None and v.presence is not None for v in out)
    assert len(ver.builder.contexts._cache) == len(keys)  # one predictor pass, cached
    again = ver.verify([EVRequest(m, p, []) for m, p in keys])
    assert [v.probs for v in again] == [v.probs for v in out]
