"""The demo runs its stages on `DemoConfig.threads` torch threads (restored afterwards), leaves the
retrain's thread count to the retrain, and logs each retrain's steps per thread count (no campaign is run)."""

import torch

import engine.campaign.steps
from engine.demo import DemoConfig, demo_campaign, run_demo


def _fake_result(tmp_path, retrain):
    phase = {"consolidate": {"pairs": 4, "labels": {}}, "promote": {"promoted": False},
             "await_humans": {"tasks": {}}, "retrain": retrain}
    return {"phases": {1: phase}, "report": {"json": f"file://{tmp_path}/r.json", "html": f"file://{tmp_path}/i.html"}}


def test_demo_stages_run_on_the_configured_threads_and_restore_them(tmp_path, monkeypatch, capsys):
    seen = []
    retrain = {"steps": 300, "seconds": 179.8, "threads": {"threads": 1, "steps": {"1": 290, "2": 9}}}

    def fake_run_campaign(config, progress=None):
        seen.append(torch.get_num_threads())
        return _fake_result(tmp_path, retrain)

    monkeypatch.setattr(engine.campaign.steps, "run_campaign", fake_run_campaign)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_demo(DemoConfig(out=str(tmp_path / "a"), threads=1))
        assert seen == [1] and torch.get_num_threads() == 2
        run_demo(DemoConfig(out=str(tmp_path / "b"), threads=None))  # None: torch's count as it is
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert "phase 1 retrain: 300 steps in 179.8 s (steps per torch thread count: {'1': 290, '2': 9})" \
        in capsys.readouterr().out


def test_demo_retrain_budget_is_the_train_minutes():
    cfg = demo_campaign(DemoConfig(train_minutes=3.0))
    assert cfg["retrain"]["max_time_s"] == 180.0
    assert DemoConfig().train_minutes * 3 <= 12  # three retrains leave room in a 15-minute demo
