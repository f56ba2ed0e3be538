"""Report checks of the model-in-the-loop targets: model share of accepted masks, phase-3 human time."""

from engine.campaign.report import checks


def _phase(seconds, share=None, sources=None):
    return {"status": "consolidated", "domain": "base", "label_quality": {},
            "accounting": {"human_seconds_per_accepted_pair": seconds},
            "model_mask_share": share, "mask_sources": sources or {}}


def test_model_share_and_third_of_phase1_time_are_checked():
    phases = {1: _phase(60.0, 0.0, {"human": 10}), 2: _phase(25.0, 0.6, {"model": 6, "human": 4}),
              3: _phase(21.0, 0.4, {"model": 4, "human": 6})}
    out = checks(phases, {}, [])
    assert out["phase2_model_proposals_at_least_half_of_accepted_masks"]["met"] is True
    assert out["phase3_model_proposals_at_least_half_of_accepted_masks"] == {
        "value": 0.4, "mask_sources": {"model": 4, "human": 6}, "met": False}
    assert "phase1_model_proposals_at_least_half_of_accepted_masks" not in out  # phase 1 has no verifiers
    assert out["phase3_human_s_per_accepted_pair_at_most_third_of_phase1"]["met"] is False  # 21 > 60 / 3
    assert "phase2_human_s_per_accepted_pair_at_most_third_of_phase1" not in out
    phases[3] = _phase(20.0, 0.7)
    assert checks(phases, {}, [])["phase3_human_s_per_accepted_pair_at_most_third_of_phase1"]["met"] is True
    old = {1: _phase(60.0), 2: {**_phase(30.0), "model_mask_share": None}}  # markers from before the field
    assert not any("model_proposals" in k for k in checks(old, {}, []))
