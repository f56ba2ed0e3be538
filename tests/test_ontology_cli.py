"""`sam3-engine ontology stats | map | propose` (the group is mounted on a bare Typer app here)."""

import json

import pytest
import typer
from typer.testing import CliRunner

from engine.cli import ontology_commands
from engine.world.samples import encode_png, generate_scenes
from ontology.proposals_table import read_proposals
from tests.ontology_fakes import FakeChatServer


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    ontology_commands.register(app)

    @app.command()
    def version() -> None:  # a second command keeps "ontology" a subcommand
        pass

    return app


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for scene in generate_scenes(3, seed=7, domain="base", image_size=96):
        (d / f"{scene.key}.png").write_bytes(encode_png(scene.image))
    return d


def run(app, *args):
    return CliRunner().invoke(app, list(args))


def test_stats(app, tmp_path):
    res = run(app, "ontology", "stats", "common_objects", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["nodes"] == 163
    f = tmp_path / "w.jsonl"
    f.write_text('{"id": "Q1", "label": "vehicle"}\n{"id": "Q2", "label": "boat", "subclass_of": ["Q1"]}\n'
                 '{"id": "Q3", broken\n')
    doc = json.loads(run(app, "ontology", "stats", f"wikidata:{f}", "--json").output)
    assert doc["records"] == 2 and doc["malformed_lines"] == 1 and doc["first_malformed"][0].startswith("line 3")
    table = run(app, "ontology", "stats", "shapes")
    assert table.exit_code == 0 and "max_depth" in table.output
    bad = run(app, "ontology", "stats", "nonsense")
    assert bad.exit_code == 2 and "unknown ontology source" in bad.output


def test_map(app):
    res = run(app, "ontology", "map", "yellow school buses", "it", "--embedder", "hashing", "--json")
    assert res.exit_code == 0, res.output
    a, b = json.loads(res.output)
    assert a["node_id"] == "school_bus" and a["method"] == "head"
    assert b["method"] == "rejected" and b["reason"].startswith("non_groundable")
    with FakeChatServer(['{"choice": "street_lamp"}']) as server:
        res = run(app, "ontology", "map", "lamp posts lit", "--embedder", "hashing", "--json",
                  "--judge-url", server.base_url)
    (c,) = json.loads(res.output)
    assert c["node_id"] == "street_lamp" and c["method"] == "judge"


def test_propose_writes_pairs_parquet(app, images, tmp_path):
    out = tmp_path / "PAIRS.parquet"
    res = run(app, "ontology", "propose", "--images", str(images), "--source", "shapes",
              "--out", str(out), "--per-image", "5", "--domain", "base")
    assert res.exit_code == 0, res.output
    assert "15 phrases proposed" in res.output and str(out) in res.output
    rows = read_proposals(str(out)).to_pylist()
    assert len(rows) == 15 and {r["status"] for r in rows} == {"proposed"}
    assert all(r["pair_id"] and r["proposer"] == "ontology" and r["image_uri"] for r in rows)
    again = tmp_path / "again.parquet"
    run(app, "ontology", "propose", "--images", str(images), "--source", "shapes", "--out", str(again),
        "--per-image", "5", "--domain", "base")
    assert read_proposals(str(again)).to_pylist() == rows  # deterministic


def test_propose_with_an_llm_records_drops(app, images, tmp_path):
    replies = ['{"phrases": ["red circles", "it"]}', "no json here", '{"phrases": ["blue star"]}']
    with FakeChatServer(replies) as server:
        cfg = tmp_path / "proposer.yaml"
        cfg.write_text(f"proposer:\n  kind: openai\n  base_url: {server.base_url}\n  model: m\n"
                       "  api_key_env: null\n")
        out = tmp_path / "llm.parquet"
        res = run(app, "ontology", "propose", "--images", str(images), "--config", str(cfg), "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = read_proposals(str(out)).to_pylist()
    proposed = [r["phrase"] for r in rows if r["status"] == "proposed"]
    assert proposed == ["red circle", "blue star"]
    reasons = sorted(r["reason"].split(":")[0] for r in rows if r["status"] == "dropped")
    assert reasons == ["non_groundable", "schema"] and "drops by reason" in res.output
    assert len(server.requests) == 3 and server.requests[0]["messages"][-1]["content"][1]["type"] == "image_url"


def test_propose_errors(app, tmp_path):
    res = run(app, "ontology", "propose", "--images", str(tmp_path / "none"), "--out", str(tmp_path / "o.parquet"))
    assert res.exit_code == 2 and "is not a folder" in res.output
    (tmp_path / "empty").mkdir()
    res = run(app, "ontology", "propose", "--images", str(tmp_path / "empty"), "--out", "o.parquet")
    assert res.exit_code == 2 and "no images" in res.output
    (tmp_path / "empty" / "a.png").write_bytes(b"x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("proposer: {kind: ontology, per_image: -1}\n")
    res = run(app, "ontology", "propose", "--images", str(tmp_path / "empty"), "--config", str(cfg),
              "--out", str(tmp_path / "o.parquet"))
    assert res.exit_code == 2 and "bad proposer config" in res.output and "per_image" in res.output
    res = run(app, "ontology", "propose", "--images", str(tmp_path / "empty"), "--proposer", "model",
              "--out", str(tmp_path / "o.parquet"))
    assert res.exit_code == 2 and "--model" in res.output
