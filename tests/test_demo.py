"""`sam3-engine demo` runs the phases 1-3 campaign end to end on a tiny budget and writes a report that
tells the truth (every target with the value reached and whether it is met)."""

import json

from typer.testing import CliRunner

from engine.cli import app

ARGS = ["--images", "2", "--gold-images", "2", "--train-minutes", "0.05", "--quiet"]


def test_demo_writes_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    html = out / "campaigns" / "demo" / "reports" / "index.html"
    assert f"report: {html}" in result.output
    report = json.loads((html.parent / "report.json").read_text())
    assert set(report["phases"]) == {"1", "2", "3"}
    assert [report["phases"][k]["mode"] for k in "123"] == ["human", "hybrid", "hybrid"]
    assert report["phases"]["3"]["domain"] == "night"
    for k in "123":
        ph = report["phases"][k]
        assert ph["status"] == "consolidated" and ph["pairs"] > 0
        assert "cgF1" in ph["label_quality"] and "IL_MCC" in ph["label_quality"]
        promote, evaluate = ph["promote"], ph["evaluate"]
        cand, base = evaluate["gold"][evaluate["candidate"]], evaluate["gold"][evaluate["baseline"]]
        assert promote["promoted"] == all(cand[d]["cgF1"] >= base[d]["cgF1"] for d in base)
    # the checks say what was reached, met or not
    checks = report["checks"]
    assert "gold_cgF1_never_regresses" in checks and checks["gold_cgF1_never_regresses"]["met"] is True
    for name in ("phase2_human_s_per_accepted_pair_at_most_half_of_phase1", "phase3_label_IL_MCC_at_least_0.95",
                 "phase3_human_s_per_accepted_pair_at_most_third_of_phase1",
                 "phase2_model_proposals_at_least_half_of_accepted_masks"):
        assert name in checks and isinstance(checks[name]["met"], bool)
        assert ("NOT met" if not checks[name]["met"] else "met") in result.output
    assert (html.parent / "human_seconds.png").read_bytes().startswith(b"\x89PNG")
    # rerun into the same folder: the campaign resumes, nothing is redone
    again = CliRunner().invoke(app, ["demo", "--out", str(out), *ARGS])
    assert again.exit_code == 0, again.output
    assert json.loads((html.parent / "report.json").read_text())["phases"] == report["phases"]
