"""Evaluating a model on an SA-Co gold JSON written by `world generate` (images next to the JSON)."""

from model.gold_eval import evaluate_gold, predict_gold


def test_evaluate_tiny_model_on_world_gold(tmp_path):
    from engine.cli.world import generate
    from model.presets import build_tiny
    from storage.saco import read_saco

    out = generate(str(tmp_path / "gold"), images=2, seed=4, negatives_per_image=2, progress=False)
    loaded = build_tiny(seed=0)
    doc = read_saco(out["gold"])
    preds = predict_gold(loaded, out["gold"])
    ids = {e["id"] for e in doc["images"]}
    assert all(p["image_id"] in ids and 0 <= p["score"] <= 1 for p in preds)
    metrics = evaluate_gold(loaded, out["gold"])
    assert set(metrics) >= {"cgF1", "pmF1", "IL_MCC"} and 0 <= metrics["cgF1"] <= 100
    # a perfect "model": the GT itself scores 100
    from model.metrics import evaluate

    perfect = [{"image_id": a["image_id"], "segmentation": a["segmentation"], "score": 1.0, "category_id": 1}
               for a in doc["annotations"]]
    assert evaluate(doc, perfect)["cgF1"] == 100.0
