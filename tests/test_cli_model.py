"""`sam3-engine world shards` + `model train/list/eval/predict/promote` end to end on the tiny preset."""

import json

import pytest
import torch
from typer.testing import CliRunner

from engine.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("cli_model")
    root = str(tmp / "root")
    r = invoke("world", "shards", "--out", str(tmp / "shards"), "--images", "6", "--seed", "1",
               "--per-shard", "4", "--negatives-per-image", "4")
    assert r.exit_code == 0, r.output
    assert "2 shards" in r.output
    r = invoke("world", "generate", "--out", str(tmp / "gold"), "--images", "3", "--seed", "2",
               "--negatives-per-image", "3")
    assert r.exit_code == 0, r.output
    r = invoke("model", "train", "--shards", str(tmp / "shards"), "--out", "tinycli", "--steps", "3",
               "--root", root)
    assert r.exit_code == 0, r.output
    assert "published tinycli:v0001" in r.output
    return tmp, root


def test_list_shows_the_published_version(trained):
    tmp, root = trained
    r = invoke("model", "list", "--root", root)
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert [rec["ref"] for rec in records] == ["tinycli:v0001"]
    assert records[0]["metrics"]["steps"] == 3


def test_eval_prints_metrics_for_every_gold_pair(trained):
    tmp, root = trained
    r = invoke("model", "eval", "--model", "tinycli", "--gold", str(tmp / "gold" / "saco_gold.json"),
               "--root", root)
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert {"cgF1", "pmF1", "IL_MCC"} <= set(metrics)
    assert 0.0 <= metrics["cgF1"] <= 100.0


def test_predict_gold_keys_by_gold_pair_ids(trained, tmp_path):
    tmp, root = trained
    gold = json.loads((tmp / "gold" / "saco_gold.json").read_text())
    out = tmp_path / "pred.json"
    # the untrained preset has random weights: a low threshold is not exposed, so just check keys
    r = invoke("model", "predict", "--model", "tinycli:v0001", "--gold", str(tmp / "gold" / "saco_gold.json"),
               "--out", str(out), "--root", root)
    assert r.exit_code == 0, r.output
    preds = json.loads(out.read_text())
    ids = {img["id"] for img in gold["images"]}
    assert all(p["image_id"] in ids for p in preds)


def test_predict_folder_and_phrase_errors(trained, tmp_path):
    tmp, root = trained
    out = tmp_path / "p.json"
    r = invoke("model", "predict", "--model", "tinycli", "--images", str(tmp / "gold" / "images"),
               "--phrases", "red circle, shape", "--out", str(out), "--root", root)
    assert r.exit_code == 0, r.output
    assert isinstance(json.loads(out.read_text()), list)
    r = invoke("model", "predict", "--model", "tinycli", "--images", str(tmp / "gold" / "images"),
               "--phrases", "bad\x07phrase", "--out", str(out), "--root", root)
    assert r.exit_code == 2 and "control" in r.output
    r = invoke("model", "predict", "--model", "tinycli", "--images", str(tmp / "nowhere"),
               "--phrases", "x", "--out", str(out), "--root", root)
    assert r.exit_code == 2 and "nowhere" in r.output


def test_promote_and_bad_references(trained):
    tmp, root = trained
    r = invoke("model", "promote", "tinycli:v0001", "--root", root)
    assert r.exit_code == 0 and "promoted tinycli:v0001" in r.output
    r = invoke("model", "list", "--root", root)
    assert json.loads(r.output.splitlines()[0])["promoted"] is True
    r = invoke("model", "eval", "--model", "nosuch", "--gold", str(tmp / "gold" / "saco_gold.json"),
               "--root", root)
    assert r.exit_code == 2 and "nosuch" in r.output
    r = invoke("model", "promote", "tinycli:v0009", "--root", root)
    assert r.exit_code == 2
    r = invoke("model", "train", "--shards", str(tmp / "shards"), "--out", "x", "--preset", "huge",
               "--root", root)
    assert r.exit_code == 2 and "huge" in r.output
