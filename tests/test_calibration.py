"""Score calibration: offsets chosen on a calibration set, saved with the model, applied by the predictor."""

import numpy as np

from model.calibration import calibrate_scores
from model.predictor import Predictor
from model.presets import build_tiny, load_model, save_model


def test_calibration_picks_the_best_offsets_and_keeps_them():
    loaded = build_tiny(seed=0)

    def fake_cgf1(model):  # peaks at query +1.0, presence -0.5
        q, p = model.extra["query_logit_bias"], model.extra["presence_logit_bias"]
        return 10 - (q - 1.0) ** 2 - (p + 0.5) ** 2

    result = calibrate_scores(loaded, {}, {}, evaluate=fake_cgf1)
    assert (result["query_logit_bias"], result["presence_logit_bias"]) == (1.0, -0.5)
    assert result["cgF1"] == 10 and len(result["tried"]) == 7 + 6
    assert loaded.extra == {"query_logit_bias": 1.0, "presence_logit_bias": -0.5}


def test_predictor_applies_the_saved_offsets(tmp_path):
    loaded = build_tiny(seed=0)
    image = np.full((64, 64, 3), 128, np.uint8)
    plain = Predictor(loaded, score_threshold=0.0).predict([("a", image, ["red circle"])])[0].pairs[0]
    loaded.extra.update(query_logit_bias=3.0, presence_logit_bias=2.0)
    save_model(loaded, tmp_path / "m")
    again = load_model(tmp_path / "m")
    shifted = Predictor(again, score_threshold=0.0).predict([("a", image, ["red circle"])])[0].pairs[0]
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert abs(shifted.presence - sig(logit(plain.presence) + 2.0)) < 1e-4
    q_plain = np.array(plain.scores) / plain.presence
    q_shift = np.array(shifted.scores) / shifted.presence
    assert np.allclose(q_shift, sig(logit(q_plain) + 3.0), atol=1e-4)
