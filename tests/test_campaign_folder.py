"""A campaign over a plain folder of photos (scikit-image's bundled samples, no ground truth): SYN mode
with a verifier set trained elsewhere, an ontology proposer, retraining on its own shards; the report
says which figures need ground truth instead of inventing them."""

import json

import numpy as np
from PIL import Image

from engine.campaign import steps
from engine.campaign.steps import open_campaign
from engine.humans.simulated import SimulatedAnnotators
from storage.saco import read_saco
from tests.campaign_support import read_text, write_config
from tests.verifiers_support import simulate_decisions, standin_context, world_pairs
from verifiers.context import StaticContexts
from verifiers.examples import build_examples
from verifiers.training import train_verifiers


def photos(folder):
    from skimage import data

    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    Image.fromarray(data.camera()).convert("RGB").save(folder / "camera.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def verifier_folder(out):
    rng = np.random.default_rng(0)
    ctx, images = {}, {}
    for scene, png, pairs in world_pairs(6, seed=3, negatives=3, max_positives=4):
        images[scene.key] = png
        for p in pairs:
            ctx[(scene.key, p.phrase)] = standin_context(scene, p.phrase, rng)
    examples = build_examples(simulate_decisions(ctx, SimulatedAnnotators(seed=1), raters=1))
    vset = train_verifiers(examples, contexts=StaticContexts(ctx), media=images.get, embedder="hashing", dims=8)
    return str(vset.save(out))


def test_folder_of_photos_end_to_end(tmp_path):
    folder = photos(tmp_path / "photos")
    path = write_config(
        tmp_path, name="photos", source={"kind": "folder", "path": str(folder)},
        proposer={"kind": "ontology", "source": "common_objects", "per_image": 4},
        humans={"backend": "none"}, verifiers={"init": verifier_folder(tmp_path / "vset"), "embedder": "hashing"},
        retrain={"enabled": True, "steps": 2, "max_time_s": 30},
        phases=[{"index": 1, "mode": "syn", "domain": "photos", "images": 5, "per_unit": 3}])
    result = steps.run_campaign(str(path))
    ph = result["phases"][1]
    assert ph["plan"]["units"] == 2
    c = open_campaign(str(path))
    quarantined = [q for u in ("u00000", "u00001") for q in c.layout.unit_done(1, "plan", u)["quarantined"]]
    assert [q["media_id"] for q in quarantined] == ["folder:broken.png"]  # one bad file, campaign goes on
    doc = read_saco(ph["consolidate"]["export"])
    media = {e["media_id"] for e in doc["images"]}
    assert media == {"folder:astronaut.png", "folder:camera.jpg", "folder:chelsea.png", "folder:coffee.png"}
    assert all(e["file_name"].startswith("file://") and e["lineage"]["source"] == "ai" for e in doc["images"])
    assert c.desk.counts(1) == {}
    # A fresh tiny model finds no masks on photos and the verifiers (trained on the shapes world) call
    # the concepts present, so SYN drops every pair with its reason instead of calling it a negative;
    # with no labelled pair there are no shards, so nothing is retrained or promoted.
    labels = ph["consolidate"]["labels"]
    reasons = {e.get("reason") for e in doc["images"] if e.get("label") == "dropped"}
    assert sum(labels.values()) == len(doc["images"]) and reasons <= {"syn: present per EV but no mask",
                                                                     "flag_label", "whole_image", "ungroundable"}
    if ph["consolidate"]["shards"]:
        assert ph["retrain"]["candidate"].startswith("tiny-model:")
        assert ph["promote"]["promoted"] is False and "ground truth" in ph["promote"]["reason"]
    else:
        assert ph["retrain"]["skipped"] == "no shards to train on"
        assert ph["promote"]["promoted"] is False
    report = json.loads(read_text(result["report"]["json"]))
    needs = report["needs_ground_truth"]
    assert set(needs) >= {"label_quality", "gold_cgF1", "promotion_gate"}
    assert "ground truth" in report["phases"]["1"]["label_quality"]["skipped"]
    assert report["phases"]["1"]["pairs"] == len(doc["images"]) > 0
    html = read_text(result["report"]["html"])
    assert "figures that need ground truth" in html
