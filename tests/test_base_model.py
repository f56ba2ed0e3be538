"""The shipped tiny base model (model/weights/tiny-base) loads and still scores its recorded gold figure.

The model was trained from scratch by `sam3-engine model train-base` on world seed 1; its figures.json
records the gold metrics on world seed 2, including a small check set this test re-scores. The
predictor and metrics are deterministic on a CPU, so a change to the model code, pre/post-processing,
the predictor or cgF1 that alters what the base model proposes shows up here.
"""

import json

import pytest

from engine.base_model import CHECK_GOLD_IMAGES, FIGURES, base_model_dir, evaluate_base
from model.presets import build_tiny, load_model


@pytest.fixture(scope="module")
def figures():
    return json.loads((base_model_dir() / FIGURES).read_text())


def test_base_model_scores_its_recorded_gold_figure(figures):
    loaded = load_model(base_model_dir())
    assert sum(p.numel() for p in loaded.model.parameters()) < 2_000_000
    assert sum(f.stat().st_size for f in base_model_dir().iterdir()) < 10 * 2**20  # ships under 10 MB
    recorded = figures["check_gold"]
    assert recorded["images"] == CHECK_GOLD_IMAGES
    now = evaluate_base(loaded, CHECK_GOLD_IMAGES)
    assert now["cgF1"] == pytest.approx(recorded["cgF1"], abs=1.0)
    assert now["IL_MCC"] == pytest.approx(recorded["IL_MCC"], abs=0.02)
    assert now["cgF1"] >= 5.0  # it finds things: a fresh model scores 0
    fresh = evaluate_base(build_tiny(seed=0), CHECK_GOLD_IMAGES)
    assert fresh["cgF1"] < 1.0


def test_campaign_init_base_names_the_shipped_model(tmp_path):
    from engine.campaign.config import CampaignConfig
    from engine.campaign.models import ensure_initial_model, registry

    cfg = CampaignConfig.model_validate({
        "name": "basecheck", "root": str(tmp_path), "source": {"kind": "shapes", "seed": 0},
        "model": {"name": "m", "init": "base"},
        "phases": [{"index": 1, "mode": "human", "domain": "base", "images": 2}],
    })
    ref = ensure_initial_model(cfg)
    assert registry(cfg).lineage(ref)["init"].endswith("tiny-base")
