"""Between phases: a promoted model re-proposes the pending pairs the old model proposed (pairs of a
later phase that were proposed but not yet routed), and nothing that was already routed."""

from engine.campaign import steps
from engine.campaign.steps import open_campaign
from tests.campaign_support import write_config


def test_pending_pairs_are_reproposed_by_the_promoted_model(tmp_path):
    path = write_config(tmp_path, name="rp", verifiers={"embedder": "hashing"},
                        retrain={"enabled": True, "steps": 1, "max_time_s": 20, "gold_images": 1, "gold_negatives": 1},
                        phases=[{"index": 1, "mode": "human", "images": 2, "per_unit": 1},
                                {"index": 2, "mode": "hybrid", "images": 2, "per_unit": 1}])
    c = open_campaign(str(path))
    steps._start(c)
    for name in ("plan", "propose", "annotate", "await_humans", "consolidate", "retrain", "evaluate"):
        steps.PHASE_STEPS[name](c, 1)
    # phase 2 gets ahead (as parallel Airflow runs may): planned and proposed by the old model,
    # one of its two units already routed
    steps._plan(c, 2)
    old = steps._propose(c, 2)["model"]
    assert old == "tiny-model:v0001"
    from engine.campaign.executors import context_of, desk_of
    from engine.campaign.stages import route_unit, verify_unit

    spec = c.spec(2)
    ctx = context_of(spec)
    route_unit(ctx, "u00000", verify_unit(ctx, "u00000")["verdicts"], desk_of(spec))
    c.layout.mark(c.layout.unit_marker(2, "annotate", "u00000"), {"pairs": 0})
    promoted = steps._promote(c, 1)
    assert promoted["promoted"] is True  # gold cgF1 0 -> 0 does not regress
    assert promoted["re_propose_units"] == 1  # u00001 only: u00000 was already routed
    again = steps._propose(c, 2)
    assert again["ran"] == 1 and again["model"] == promoted["candidate"] == "tiny-model:v0002"
    versions = {u: {r["model_version"] for r in c.layout.read_stage(2, "propose", u)} for u in ("u00000", "u00001")}
    assert versions == {"u00000": {"tiny-model:v0001"}, "u00001": {"tiny-model:v0002"}}
