"""`sam3-engine demo` runs end to end on a tiny budget and writes a report that tells the truth."""

import json

from typer.testing import CliRunner

from engine.cli import app


def test_demo_writes_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--train-images", "8", "--gold-images", "2",
                                      "--train-minutes", "0.1"])
    assert result.exit_code == 0, result.output
    report_path = out / "reports" / "report.json"
    assert f"report: {out / 'reports' / 'index.html'}" in result.output
    report = json.loads(report_path.read_text())
    gold = json.loads((out / "world" / "gold" / "saco_gold.json").read_text())
    assert report["data"]["gold_pairs"] == len(gold["images"])
    assert report["model"]["steps"] >= 1
    assert report["model"]["ref"] == "demo-tiny:v0001"
    # promotion follows the gate: promoted iff gold cgF1 did not regress
    assert report["model"]["promoted"] == (report["gold_after"]["cgF1"] >= report["gold_before"]["cgF1"])
    assert "not_yet" in report and "AI verifiers" in report["not_yet"]
    assert (out / "reports" / "index.html").read_text().startswith("<!doctype html>")
    # rerun into the same folder: a second version is published, nothing crashes
    again = CliRunner().invoke(app, ["demo", "--out", str(out), "--train-images", "8", "--gold-images", "2",
                                     "--train-minutes", "0.1"])
    assert again.exit_code == 0, again.output
    assert json.loads(report_path.read_text())["model"]["ref"] == "demo-tiny:v0002"
