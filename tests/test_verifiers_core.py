"""Verifier building blocks with hand-checked answers: label sets, verdicts, decision logs, examples
(corrections included), thresholds at a target precision, reliability, rater agreement, filtering."""

import numpy as np
import pytest
from PIL import Image

from engine.humans import base as human_base
from storage.errors import SchemaVersionError
from storage.masks import mask_to_instance
from storage.records import Pair
from storage.tables import write_pairs
from verifiers.base import (
    EVRequest,
    MVRequest,
    Verdict,
    check_requests,
    error_verdict,
    make_verdict,
)
from verifiers.calibration import choose_thresholds, reliability, threshold_report
from verifiers.decisions import Decision, read_decisions, write_decisions
from verifiers.evaluation import rater_agreement
from verifiers.examples import Example, build_examples
from verifiers.filtering import drop_rejected, rescore_presence
from verifiers.labels import EV_LABELS, MV_LABELS
from verifiers.reliability import DIAGONAL, reliability_png, to_pixel


def _box(x0, y0, x1, y1, size=32):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return mask_to_instance(m, source="model")


def test_label_sets_match_the_paper_and_the_human_backends():
    assert MV_LABELS == ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
    assert EV_LABELS == (
        "accept",
        "reject",
        "reject_unseparated",
        "flag_label",
        "whole_image",
        "ungroundable",
    )
    assert human_base.MV_LABELS == MV_LABELS and human_base.EV_LABELS == EV_LABELS


def test_verdicts_normalise_carry_version_and_ev_presence():
    ev_empty = EVRequest("m", "cat", [], request_id="r1")
    v = make_verdict(ev_empty, [2, 1, 1, 0, 0, 0], "learned:v1/ev")
    assert v.probs["accept"] == pytest.approx(0.5) and sum(v.probs.values()) == pytest.approx(1)
    assert (
        v.presence == pytest.approx(0.5) and v.label == "accept" and v.verifier == "learned:v1/ev"
    )
    assert v.to_dict()["request_id"] == "r1"
    with_masks = make_verdict(EVRequest("m", "cat", [_box(0, 0, 4, 4)]), [1, 3, 0, 0, 0, 0], "x")
    assert with_masks.presence is None and with_masks.label == "reject"
    tie = Verdict("mv", {"accept": 0.5, "reject": 0.5}, "x")
    assert tie.label == "accept"  # ties: label-set order
    err = error_verdict(MVRequest("m", "cat", _box(0, 0, 2, 2)), "x", "bad image")
    assert err.label is None and err.error == "bad image" and err.p("accept") == 0
    with pytest.raises(ValueError, match="needs 5"):
        make_verdict(MVRequest("m", "cat", _box(0, 0, 2, 2)), [1, 0], "x")
    with pytest.raises(TypeError, match="the mv verifier takes MVRequest"):
        check_requests("mv", [ev_empty])


def test_decision_log_round_trip_and_schema_check(tmp_path):
    ds = [
        Decision(
            "t1", "mv", "img1", "red cat", "r0", "accept", masks=[_box(1, 1, 5, 5)], seconds=7.0
        ),
        Decision(
            "t2",
            "correction",
            "img1",
            "dog",
            "r0",
            "positive",
            masks=[],
            instances=[_box(2, 2, 9, 9)],
            campaign="c",
            phase=1,
            media_uri="file:///x/img1.png",
            ai_assisted=True,
        ),
    ]
    uri = write_decisions(str(tmp_path / "d.parquet"), ds)
    back = read_decisions(uri)
    assert back == ds
    write_pairs(str(tmp_path / "p.parquet"), [Pair(media_id="m", phrase="cat", label="negative")])
    with pytest.raises(SchemaVersionError, match="pairs v1, expected verifier_decisions v1"):
        read_decisions(str(tmp_path / "p.parquet"))
    with pytest.raises(ValueError, match="kind 'qa'"):
        Decision("t", "qa", "m", "p", "r", "x")


def test_examples_group_votes_and_learn_from_corrections():
    a, b, c = _box(0, 0, 8, 8), _box(10, 10, 20, 20), _box(22, 22, 30, 30)
    b_edit = _box(10, 10, 19, 20)  # a slightly edited b (IoU 0.9)
    ds = [
        Decision("mv1", "mv", "m", "cat", f"r{i}", lab, masks=[a])
        for i, lab in enumerate(["accept", "reject", "accept"])
    ]
    ds += [Decision("ev1", "ev", "m", "cat", f"r{i}", "reject", masks=[a, b]) for i in range(3)]
    ds += [
        Decision("ev1", "ev", "m", "cat", "r9", "maybe", masks=[a, b])
    ]  # not an EV label: skipped
    # correction: a removed, b kept (edited), c added
    ds += [
        Decision(
            "cor1", "correction", "m", "cat", "r0", "positive", masks=[a, b], instances=[b_edit, c]
        )
    ]
    ds += [
        Decision("cor2", "correction", "m", "it", "r0", "dropped", masks=[], reason="ungroundable")
    ]
    ex = build_examples(ds)
    mv = {e.key: e for e in ex.mv}
    assert mv["mv1"].votes == ["accept", "reject", "accept"] and mv["mv1"].majority == "accept"
    assert mv["cor1#r0#add1"].votes == ["accept"] and mv["cor1#r0#add1"].masks == [c]
    assert mv["cor1#r0#rm0"].votes == ["reject"] and mv["cor1#r0#rm0"].masks == [a]
    assert len(mv) == 3  # the edited b is neither added nor removed
    ev = {e.key: e for e in ex.ev}
    assert ev["ev1"].votes == ["reject"] * 3 and ex.skipped == {"ev:maybe": 1}
    assert ev["cor1#r0#final"].votes == ["accept"] and ev["cor1#r0#final"].masks == [b_edit, c]
    assert ev["cor1#r0#before"].votes == ["reject"] and ev["cor1#r0#before"].masks == [a, b]
    assert ev["cor2#r0#final"].votes == ["ungroundable"]
    assert len(build_examples(ds, use_corrections=False).mv) == 1


def test_thresholds_reach_the_target_precision_with_most_coverage():
    # 100 items: P(accept) = i/100; humans accept items 30.. except 35 and 90. From the top, items
    # 99..36 hold one rejection (90): 63/64 >= 0.98; adding 35 gives 63/65 < 0.98 (and lower after).
    # From the bottom, items 0..29 are all rejected; item 30 was accepted: 30/31 < 0.98.
    p = np.arange(100) / 100
    y = (np.arange(100) >= 30) & ~np.isin(np.arange(100), [35, 90])
    t = choose_thresholds(p, y, precision=0.98, min_support=5)
    assert t.accept_at == pytest.approx(0.36) and t.accept_precision == pytest.approx(63 / 64)
    assert t.accept_coverage == pytest.approx(0.64)
    assert (
        t.reject_at == pytest.approx(0.29)
        and t.reject_precision == 1.0
        and t.reject_coverage == pytest.approx(0.30)
    )
    assert t.coverage == pytest.approx(t.accept_coverage + t.reject_coverage)
    assert t.route(0.7) == "accept" and t.route(0.1) == "reject" and t.route(0.33) == "human"
    strict = choose_thresholds(p, y, precision=0.98, min_support=5, bound="wilson")
    assert strict.coverage < t.coverage
    none = choose_thresholds(np.full(20, 0.5), np.arange(20) % 2 == 0, precision=0.98)
    assert none.accept_at is None and none.reject_at is None and none.coverage == 0
    with pytest.raises(ValueError, match="precision"):
        choose_thresholds(p, y, precision=1.5)


def test_reliability_bins_and_ece():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    calibrated = reliability(p, rng.uniform(size=p.size) < p)
    assert calibrated["ece"] < 0.02 and sum(b["count"] for b in calibrated["bins"]) == p.size
    over = reliability(p, rng.uniform(size=p.size) < 0.5)  # says p, truth is always 0.5
    assert over["ece"] == pytest.approx(0.25, abs=0.02)
    rep = threshold_report(p[:100], p[:100] > 0.5)
    assert set(rep) == {"thresholds", "reliability"}


def test_reliability_png_pixels(tmp_path):
    rel = {
        "bins": [{"lo": 0.2, "hi": 0.3, "count": 10, "mean_p": 0.25, "observed": 0.75}],
        "ece": 0.5,
        "n": 10,
    }
    path = reliability_png({"MV": rel}, tmp_path / "r.png")
    img = np.asarray(Image.open(path).convert("RGB"))
    x, y = to_pixel(0.25, 0.75)
    assert tuple(img[y, x]) == (31, 119, 180)  # the point, in the first curve colour
    dx, dy = to_pixel(0.6, 0.6)
    assert tuple(img[dy, dx]) == DIAGONAL  # the diagonal of perfect calibration
    assert tuple(img[to_pixel(0.9, 0.1)[1], to_pixel(0.9, 0.1)[0]]) == (255, 255, 255)


def test_rater_agreement_holds_out_each_rater():
    ex = [
        Example("mv", "a", "m", "p", [], ["accept", "accept", "reject"]),
        Example("mv", "b", "m", "p", [], ["reject", "reject", "reject"]),
        Example("mv", "c", "m", "p", [], ["accept", "reject"]),
    ]  # 2 votes: not used for held-out
    r = rater_agreement(ex, ["accept", "reject", "accept"])
    # item a: holding r0 -> others (accept, reject) tie: skipped; r1 likewise; r2 -> truth accept, human wrong
    # item b: three cases, truth reject, humans right
    assert r["judgements"] == 4 and r["items"] == 2
    assert r["human_accuracy"] == pytest.approx(3 / 4) and r["ai_accuracy"] == pytest.approx(1.0)
    assert r["ai_vs_majority_all"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rater_agreement(ex, ["accept"])


def test_filtering_by_ev_presence_and_mv():
    preds = [
        {"image_id": "p1", "score": 0.6},
        {"image_id": "p1", "score": 0.3},
        {"image_id": "p2", "score": 0.9},
    ]
    out = rescore_presence(preds, {"p1": 0.6, "p2": 0.9}, {"p1": 0.9})
    assert [round(p["score"], 3) for p in out] == [0.9, 0.45, 0.9]  # p2 has no EV score: unchanged
    assert preds[0]["score"] == 0.6  # inputs are not modified
    assert drop_rejected(out, [0.7, 0.2, None]) == [out[0], out[2]]
