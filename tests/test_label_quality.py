"""Label quality of produced pairs against the shapes world's exact ground truth."""

from engine.campaign.quality import score_labels
from engine.world.samples import generate_samples
from storage.records import Pair


def _world_pairs(n=8, seed=3):
    return [p for s in generate_samples(n, seed, negatives_per_image=4) for p in s.pairs]


def test_perfect_labels_score_full_marks_even_on_crowd_only_pairs():
    pairs = _world_pairs()
    crowd_only = [p for p in pairs if p.instances and all(i.iscrowd for i in p.instances)]
    assert crowd_only, "the sample should hold a pair whose only instance is a crowd"
    q = score_labels(pairs)
    assert q["label_accuracy"] == 1.0 and q["IL_MCC"] == 1.0 and q["cgF1"] == 100.0


def test_a_wrong_negative_lowers_accuracy_and_il_mcc():
    pairs = _world_pairs()
    i = next(k for k, p in enumerate(pairs) if p.label == "positive")
    wrong = pairs[i]
    pairs[i] = Pair(media_id=wrong.media_id, phrase=wrong.phrase, label="negative", instances=[])
    q = score_labels(pairs)
    assert q["label_accuracy"] < 1.0 and q["IL_MCC"] < 1.0 and q["cgF1"] < 100.0
