"""Routing policy with fixed verdicts: every branch of route_pair and human_step."""

from engine.campaign.routing import Band, Policy, human_step, route_pair
from verifiers.base import Verdict

MV = ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
EV = ("accept", "reject", "reject_unseparated", "flag_label", "whole_image", "ungroundable")
HYBRID = Policy("hybrid", mv=Band(0.8, 0.2), ev=Band(0.9, 0.1), spot_check_rate=0.0)


def mv(p_accept, version="vset:v1/mv"):
    probs = {lab: 0.0 for lab in MV}
    probs.update(accept=p_accept, reject=1 - p_accept)
    return Verdict("mv", probs, version)


def ev(probs: dict, n_masks=1):
    full = {lab: probs.get(lab, 0.0) for lab in EV}
    return Verdict("ev", full, "vset:v1/ev", presence=None if n_masks else 1 - full["accept"])


def test_human_mode_sends_every_mask_then_ev():
    r = route_pair(Policy("human"), "p", 3)
    assert (r.outcome, r.human_mv, r.human_ev, r.decisions) == ("human", [0, 1, 2], True, [])


def test_auto_accept_positive_records_ai_decisions():
    r = route_pair(HYBRID, "p", 2, [mv(0.95), mv(0.05)], ev({"accept": 0.97, "reject": 0.03}))
    assert (r.outcome, r.label, r.accepted) == ("final", "positive", [0])
    assert [d["outcome"] for d in r.decisions] == ["accept", "reject", "accept"]
    assert all(d["source"] == "ai" and d["verifier"].startswith("vset:v1/") for d in r.decisions)
    assert r.decisions[0]["probs"]["accept"] == 0.95


def test_negative_settled_by_ev_presence():
    r = route_pair(HYBRID, "p", 0, [], ev({"accept": 0.95, "reject": 0.05}, n_masks=0))
    assert (r.outcome, r.label) == ("final", "negative")
    # EV unsure about presence -> a human EV check; EV sure something is missing -> correction
    r = route_pair(HYBRID, "p", 0, [], ev({"accept": 0.5, "reject": 0.5}, n_masks=0))
    assert (r.outcome, r.human_ev, r.correction) == ("human", True, False)
    r = route_pair(HYBRID, "p", 0, [], ev({"accept": 0.02, "reject": 0.98}, n_masks=0))
    assert (r.outcome, r.correction) == ("human", True)


def test_uncertain_mask_goes_to_human_mv_then_ev():
    r = route_pair(HYBRID, "p", 2, [mv(0.95), mv(0.5)], ev({"accept": 0.99}))
    assert (r.outcome, r.accepted, r.human_mv, r.human_ev) == ("human", [0], [1], True)


def test_special_ev_label_drops_only_when_calibrated():
    r = route_pair(HYBRID, "p", 0, [], ev({"whole_image": 0.95, "accept": 0.05}, n_masks=0))
    assert (r.outcome, r.label, r.reason) == ("final", "dropped", "whole_image")
    uncalibrated = Policy("hybrid")
    r = route_pair(uncalibrated, "p", 0, [], ev({"whole_image": 0.95, "accept": 0.05}, n_masks=0))
    assert r.outcome == "human" and r.human_ev


def test_errored_verdicts_go_to_humans():
    bad = Verdict("mv", {}, "vset:v1/mv", error="image unreadable")
    r = route_pair(HYBRID, "p", 1, [bad], ev({"accept": 0.99}))
    assert r.human_mv == [0] and r.outcome == "human"


def test_spot_check_rate_is_a_deterministic_share():
    policy = Policy("hybrid", mv=Band(0.8, 0.2), ev=Band(0.9, 0.1), spot_check_rate=0.3, seed=1)
    routes = [route_pair(policy, f"pair{i}", 0, [], ev({"accept": 0.99}, 0)) for i in range(400)]
    checked = [r for r in routes if r.spot_check]
    assert 0.22 < len(checked) / 400 < 0.38
    assert all(r.outcome == "human" and r.human_ev and r.ai_label == "negative" for r in checked)
    assert [r.spot_check for r in routes] == [route_pair(policy, f"pair{i}", 0, [], ev({"accept": 0.99}, 0)).spot_check
                                              for i in range(400)]


def test_syn_mode_never_asks_humans():
    syn = Policy("syn")
    assert route_pair(syn, "p", 1, [mv(0.7)], ev({"accept": 0.6})).label == "positive"
    r = route_pair(syn, "p", 1, [mv(0.7)], ev({"accept": 0.3, "reject": 0.7}))
    assert (r.outcome, r.label, r.exhaustive) == ("final", "positive", False)
    r = route_pair(syn, "p", 0, [], ev({"accept": 0.2, "reject": 0.8}, 0))
    assert (r.outcome, r.label) == ("final", "dropped")
    assert route_pair(syn, "p", 0, [], ev({"accept": 0.8}, 0)).label == "negative"
    assert route_pair(syn, "p", 1, [None], None).outcome == "final"


def res(label, instances=None, reason=None):
    return [{"label": label, "instances": instances or [], "reason": reason}]


def test_human_step_chain_mv_ev_correction():
    route = route_pair(Policy("human"), "p", 2).to_dict()
    step = human_step(route, {})
    assert [n[:2] for n in step.needed] == [("mv", 0), ("mv", 1)]
    results = {"mv:0": res("accept"), "mv:1": res("reject")}
    step = human_step(route, results)
    assert step.needed == [("ev", None, [0])]
    done = human_step(route, {**results, "ev": res("accept")})
    assert (done.label, done.masks, done.source) == ("positive", [0], "human")
    step = human_step(route, {**results, "ev": res("reject")})
    assert step.needed == [("correction", None, [0])]
    inst = {"rle": {"size": [4, 4], "counts": "04"}, "bbox": [0, 0, 1, 1]}
    final = human_step(route, {**results, "ev": res("reject"), "correction": res("positive", [inst])})
    assert (final.label, final.corrected) == ("positive", [inst])
    assert human_step(route, {**results, "ev": res("ungroundable")}).reason == "ungroundable"
    assert human_step(route, {**results, "ev": res("reject"), "correction": res("dropped", reason="whole_image")}
                      ).label == "dropped"
    assert human_step(route, {"mv:0": "cancelled"}).reason == "human budget exhausted"


def test_spot_check_human_accept_keeps_ai_source():
    policy = Policy("hybrid", mv=Band(0.8, 0.2), ev=Band(0.9, 0.1), spot_check_rate=1.0)
    route = route_pair(policy, "p", 0, [], ev({"accept": 0.99}, 0)).to_dict()
    assert human_step(route, {}).needed == [("ev", None, [])]
    agreed = human_step(route, {"ev": res("accept")})
    assert (agreed.label, agreed.source) == ("negative", "ai")
    assert human_step(route, {"ev": res("reject")}).needed == [("correction", None, [])]
