"""`sam3-engine verifiers train / calibrate / eval` on decision logs of the shapes world (simulated raters,
GT-perturbed stand-in proposals), with features from the real tiny SAM 3 preset (untrained)."""

import json

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from engine.cli import verifier_commands
from engine.humans.simulated import SimulatedAnnotators
from tests.verifiers_support import simulate_decisions, standin_context, world_pairs
from verifiers.decisions import write_decisions
from verifiers.reliability import SIZE


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vcli")
    rng = np.random.default_rng(0)
    humans = SimulatedAnnotators(seed=2)
    logs = {}
    for name, start, n in (("train", 0, 3), ("slice", 50, 2)):
        ctx = {
            (s.key, p.phrase): standin_context(s, p.phrase, rng)
            for s, _png, pairs in world_pairs(n, seed=4, negatives=3, max_positives=4, start=start)
            for p in pairs
        }
        logs[name] = write_decisions(str(tmp / f"{name}.parquet"), simulate_decisions(ctx, humans))
    app = typer.Typer()
    verifier_commands.register(app)
    return app, tmp, logs


def run(app, *args):
    result = CliRunner().invoke(app, ["verifiers", *args])
    return result.exit_code, result.output


def test_train_calibrate_eval_from_a_folder(cli):
    app, tmp, logs = cli
    code, out = run(
        app,
        "train",
        "--decisions",
        logs["train"],
        "--out",
        str(tmp / "v1"),
        "--embedder",
        "hashing",
    )
    assert code == 0, out
    assert "verifiers saved" in out and (tmp / "v1" / "config.json").is_file()
    cfg = json.loads((tmp / "v1" / "config.json").read_text())
    assert cfg["tasks"] == ["mv", "ev"] and cfg["info"]["feature_model"] == "tiny"
    code, out = run(
        app,
        "calibrate",
        "--verifier",
        str(tmp / "v1"),
        "--decisions",
        logs["slice"],
        "--out",
        str(tmp / "cal"),
        "--precision",
        "0.9",
        "--min-support",
        "3",
    )
    assert code == 0, out
    thr = json.loads((tmp / "cal" / "thresholds.json").read_text())
    assert thr["target_precision"] == 0.9 and thr["verifier"].startswith("dir:v1@")
    assert {"mv", "ev"} <= set(thr) and 0 <= thr["mv"]["coverage"] <= 1
    png = Image.open(tmp / "cal" / "reliability.png")
    assert png.format == "PNG" and png.size == SIZE
    assert "coverage" in out and "reliability.png" in out
    code, out = run(
        app,
        "eval",
        "--verifier",
        str(tmp / "v1"),
        "--decisions",
        logs["slice"],
        "--out",
        str(tmp / "eval.json"),
    )
    assert code == 0, out
    report = json.loads((tmp / "eval.json").read_text())
    for task in ("mv", "ev"):
        r = report[task]
        assert r["judgements"] > 0 and 0 <= r["ai_accuracy"] <= 1 and 0 <= r["human_accuracy"] <= 1
        assert r["verifier"] == f"{thr['verifier']}/{task}"


def test_train_publishes_versions_to_the_registry(cli):
    app, tmp, logs = cli
    root = str(tmp / "root")
    args = [
        "train",
        "--decisions",
        logs["train"],
        "--out",
        "shapes-verifiers",
        "--root",
        root,
        "--embedder",
        "hashing",
        "--task",
        "ev",
    ]
    code, out = run(app, *args)
    assert code == 0, out
    assert "shapes-verifiers:v0001" in out
    code, out = run(
        app,
        "eval",
        "--verifier",
        "shapes-verifiers:1",
        "--root",
        root,
        "--decisions",
        logs["slice"],
    )
    assert code == 0, out
    assert json.loads(out)["ev"]["verifier"] == "shapes-verifiers:v0001/ev"


def test_cli_errors_name_the_problem(cli):
    app, tmp, logs = cli
    code, out = run(
        app, "train", "--decisions", logs["train"], "--out", str(tmp / "x"), "--task", "qa"
    )
    assert code == 2 and "--task 'qa'" in out
    code, out = run(
        app, "train", "--decisions", str(tmp / "missing.parquet"), "--out", str(tmp / "x")
    )
    assert code == 2 and "cannot read decisions" in out
    code, out = run(app, "eval", "--verifier", "nope:v1", "--decisions", logs["slice"])
    assert code == 2 and "no registry" in out
    code, out = run(
        app,
        "eval",
        "--verifier",
        "nope:v1",
        "--decisions",
        logs["slice"],
        "--root",
        str(tmp / "r2"),
    )
    assert code == 2 and "'nope' is not registered" in out
    code, out = run(
        app,
        "calibrate",
        "--verifier",
        str(tmp / "v1"),
        "--decisions",
        logs["slice"],
        "--out",
        str(tmp / "c2"),
        "--precision",
        "2",
    )
    assert code == 2 and "--precision" in out
