"""A tiny campaign end to end, inline: phase 1 human, phase 2 hybrid (verifiers trained on phase 1),
phase 3 SYN on a new domain (no human task at all); retrain -> gold gate -> promote; report; CLI."""

import json

import pytest
from typer.testing import CliRunner

from engine.campaign import steps
from engine.campaign.config import load_config
from engine.campaign.steps import open_campaign
from engine.cli import app
from model.registry import ModelRegistry
from storage.saco import read_saco
from storage.shards import ShardReader, list_shards
from storage.tables import read_pairs
from tests.campaign_support import read_text, write_config

PHASES = [
    {"index": 1, "mode": "human", "domain": "base", "images": 4, "per_unit": 2},
    {"index": 2, "mode": "hybrid", "domain": "base", "images": 4, "per_unit": 2},
    {"index": 3, "mode": "syn", "domain": "night", "images": 2, "per_unit": 2},
]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    path = write_config(folder, name="e2e", phases=PHASES, verifiers={"embedder": "hashing"},
                        retrain={"enabled": True, "steps": 2, "max_time_s": 30, "gold_images": 2,
                                 "gold_negatives": 2})
    result = steps.run_campaign(str(path))
    return path, result


def test_phases_run_with_the_right_deciders(campaign):
    path, result = campaign
    c = open_campaign(str(path))
    counts = {k: c.desk.counts(k) for k in (1, 2, 3)}
    assert counts[3] == {}, "SYN mode must not create a single human task"
    assert counts[1].get("done", 0) > 0 and set(counts[1]) == {"done"}
    for k in (1, 2, 3):
        units = sorted({u for u in ("u00000", "u00001") if c.layout.unit_done(k, "final", u) or
                        c.layout.store.exists(c.layout.part(k, "final", u))})
        pairs = [p for u in units for p in read_pairs(c.layout.part(k, "final", u), c.layout.store)]
        assert pairs, f"phase {k} produced no pairs"
        sources = {p.lineage.source for p in pairs}
        assert sources == ({"human"} if k == 1 else {"ai"} if k == 3 else sources)
        for p in pairs:  # lineage on every row
            assert p.lineage.campaign == "e2e" and p.lineage.phase == k
            assert p.lineage.model_version.startswith("tiny-model:v")
            if k == 3:
                assert p.lineage.verifier_versions, "SYN labels must name the verifiers that decided them"
    assert result["phases"][3]["annotate"]["verifiers"]
    assert result["phases"][2]["annotate"]["verifiers"] == result["phases"][2]["annotate"]["verifiers"]


def test_outputs_exports_shards_and_decision_records(campaign):
    path, result = campaign
    c = open_campaign(str(path))
    for k in (1, 2, 3):
        cons = result["phases"][k]["consolidate"]
        doc = read_saco(cons["export"])
        assert len(doc["images"]) == cons["pairs"]
        assert all("lineage" in e and e["lineage"]["source"] in ("ai", "human") for e in doc["images"])
        n_kept = cons["labels"]["positive"] + cons["labels"]["negative"]
        shard_pairs = [p for s in ShardReader(list_shards(c.layout.shards_prefix(k), "train")) for p in s.pairs]
        assert len(shard_pairs) == n_kept
        assert all(p.lineage.phase == k for p in shard_pairs)
    # every AI decision carries source, verifier version and probabilities
    recs = c.layout.read_stage(2, "decisions", "u00000")
    ai = [d for r in recs for d in r["ai"]]
    assert ai and all(d["source"] == "ai" and d["verifier"] and abs(sum(d["probs"].values()) - 1) < 1e-3
                      for d in ai)


def test_retrain_gate_and_report(campaign):
    path, result = campaign
    cfg = load_config(str(path))
    reg = ModelRegistry(cfg.root, state=cfg.state)
    for k in (1, 2, 3):
        ev, pr = result["phases"][k]["evaluate"], result["phases"][k]["promote"]
        cand, base = ev["gold"][ev["candidate"]], ev["gold"][ev["baseline"]]
        regressed = any(cand[d]["cgF1"] < base[d]["cgF1"] for d in base)
        assert pr["promoted"] == (not regressed)
    promoted = [v.ref for v in reg.list("tiny-model") if v.promoted]
    assert len(promoted) == 1
    report = json.loads(read_text(result["report"]["json"]))
    assert set(report["phases"]) == {"1", "2", "3"}
    p1 = report["phases"]["1"]
    assert p1["accounting"]["total"]["human_seconds"] > 0 and p1["accounting"]["ai_coverage"] == 0
    assert report["phases"]["3"]["accounting"]["total"]["human_seconds"] == 0
    assert report["phases"]["3"]["accounting"]["total"]["multiplier"] is None
    assert "cgF1" in p1["label_quality"] and "IL_MCC" in p1["label_quality"]
    assert report["gold_cgF1_by_model"] and report["needs_ground_truth"] == {}
    assert "phase2_human_s_per_accepted_pair_at_most_half_of_phase1" in report["checks"]
    html = read_text(result["report"]["html"])
    assert html.startswith("<!doctype html>") and 'src="human_seconds.png"' in html


def test_rerun_is_idempotent_and_cli_works(campaign):
    path, result = campaign
    cfg = load_config(str(path))
    before = {k: read_text(result["phases"][k]["consolidate"]["export"]) for k in (1, 2, 3)}
    n_models = len(ModelRegistry(cfg.root, state=cfg.state).list())
    tasks = open_campaign(str(path)).desk.counts()
    again = steps.run_campaign(str(path))
    for k in (1, 2, 3):
        for name in ("plan", "propose", "annotate", "consolidate"):
            assert again["phases"][k][name]["ran"] == 0, (k, name)
        assert read_text(again["phases"][k]["consolidate"]["export"]) == before[k]
    assert len(ModelRegistry(cfg.root, state=cfg.state).list()) == n_models
    assert open_campaign(str(path)).desk.counts() == tasks
    runner = CliRunner()
    out = runner.invoke(app, ["campaign", "step", "await_humans", str(path), "--phase", "1"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["done"] is True
    root = str(cfg.root)
    out = runner.invoke(app, ["campaign", "status", "e2e", "--root", root])
    assert out.exit_code == 0 and "syn" in out.output, out.output
    out = runner.invoke(app, ["campaign", "export", "e2e", "--root", root])
    assert out.exit_code == 0 and "saco.json" in out.output, out.output
    out = runner.invoke(app, ["campaign", "report", "e2e", "--root", root])
    assert out.exit_code == 0 and "index.html" in out.output
    out = runner.invoke(app, ["campaign", "status", "nope", "--root", root])
    assert out.exit_code != 0 and "no campaign 'nope'" in out.output
