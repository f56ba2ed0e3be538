"""Simulated annotators (MV, EV, correction, raters, determinism) and the time model."""

import numpy as np
import pytest
from pydantic import ValidationError

from engine.humans.base import HumanBackend, HumanResult, HumanTask, majority_label, unanimous_accept
from engine.humans.simulated import AnnotatorProfile, SimulatedAnnotators, iou
from engine.humans.timing import TimeModel
from engine.world.samples import WorldOracle, generate_samples
from storage.masks import instance_to_mask, mask_to_instance

ORACLE = WorldOracle(cache_size=64)
SAMPLES = list(generate_samples(30, seed=8, negatives_per_image=2))
POSITIVES = [p for s in SAMPLES for p in s.pairs if p.label == "positive"]
NEGATIVES = [p for s in SAMPLES for p in s.pairs if p.label == "negative"]
EXACT = AnnotatorProfile(mv_error_rate=0.0, ev_error_rate=0.0, miss_small_rate=0.0, boundary_px=0)


def annotators(**profile):
    return SimulatedAnnotators(ORACLE, AnnotatorProfile(**profile), seed=1)


def mv_tasks(n):
    """n MV tasks: alternately a true instance (truth: accept) and an instance of another phrase."""
    tasks, truth = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        pair = POSITIVES[int(rng.integers(len(POSITIVES)))]
        if i % 2 == 0:
            inst, ok = pair.instances[int(rng.integers(len(pair.instances)))], True
        else:
            gt_ids = {o.id for o in ORACLE.objects(pair.media_id, pair.phrase)}
            others = [o for o in ORACLE.scene(pair.media_id).objects if o.id not in gt_ids]
            if not others:
                continue
            obj = others[int(rng.integers(len(others)))]
            inst, ok = mask_to_instance(ORACLE.scene(pair.media_id).mask(obj.id), "model"), False
        tasks.append(HumanTask(task_id=f"mv-{i}", kind="mv", media_id=pair.media_id, phrase=pair.phrase, masks=[inst]))
        truth.append(ok)
    return tasks, truth


def run(backend, tasks):
    backend.submit(tasks)
    by_id = {r.task_id: r for r in backend.collect()}
    return [by_id[t.task_id] for t in tasks]


def test_is_a_human_backend_and_queues_results():
    backend = annotators()
    assert isinstance(backend, HumanBackend)
    tasks, _ = mv_tasks(4)
    assert backend.submit(tasks) == [t.task_id for t in tasks]
    assert sorted(backend.pending()) == sorted(t.task_id for t in tasks)
    assert [r.task_id for r in backend.collect([tasks[0].task_id])] == [tasks[0].task_id]
    with pytest.raises(ValueError, match="submitted twice"):
        backend.submit([tasks[1]])
    assert len(backend.collect()) == 3 and backend.pending() == [] and backend.collect() == []


def test_mv_exact_and_error_rate():
    tasks, truth = mv_tasks(600)
    exact = run(SimulatedAnnotators(ORACLE, EXACT, seed=1), tasks)
    assert [r.label == "accept" for r in exact] == truth
    noisy = run(annotators(mv_error_rate=0.2), tasks)
    wrong = np.mean([(r.label == "accept") != ok for r, ok in zip(noisy, truth)])
    assert 0.15 < wrong < 0.25


def test_mv_accept_threshold_on_iou():
    pair = max(POSITIVES, key=lambda p: max(i.bbox[2] * i.bbox[3] for i in p.instances))
    gt = max((g for g in ORACLE.instances(pair.media_id, pair.phrase)), key=lambda g: g.area)
    rows = np.nonzero(gt.mask.any(1))[0]

    def cut(fraction):  # remove the bottom rows until IoU with the GT is about 1 - fraction
        mask = gt.mask.copy()
        cum = np.cumsum(gt.mask[rows[::-1]].sum(1))
        k = int(np.searchsorted(cum, fraction * gt.area))
        mask[rows[::-1][:k]] = False
        return mask

    backend = SimulatedAnnotators(ORACLE, EXACT, seed=1)
    for fraction, expected in ((0.1, "accept"), (0.3, "reject")):
        mask = cut(fraction)
        assert abs(iou(mask, gt.mask) - (1 - fraction)) < 0.05
        task = HumanTask(task_id=f"cut-{fraction}", kind="mv", media_id=pair.media_id, phrase=pair.phrase,
                         masks=[mask_to_instance(mask, "model")])
        assert backend.judge(task).label == expected


def test_ev_labels_and_error_rate():
    tasks, truth = [], []
    for i, pair in enumerate(POSITIVES[:300]):
        gts = ORACLE.instances(pair.media_id, pair.phrase)
        if i % 2 == 0:
            masks, label = pair.instances, "accept"
        else:
            drop = int(np.argmax([not g.iscrowd for g in gts]))
            masks = [m for j, m in enumerate(pair.instances) if j != drop]
            label = "reject_unseparated" if gts[drop].iscrowd else "reject"
        tasks.append(HumanTask(task_id=f"ev-{i}", kind="ev", media_id=pair.media_id, phrase=pair.phrase, masks=masks))
        truth.append(label)
    for j, pair in enumerate(NEGATIVES[:30]):
        tasks.append(HumanTask(task_id=f"ev-neg-{j}", kind="ev", media_id=pair.media_id, phrase=pair.phrase))
        truth.append("accept")
    exact = run(SimulatedAnnotators(ORACLE, EXACT, seed=1), tasks)
    assert [r.label for r in exact] == truth
    assert "reject_unseparated" in truth and "reject" in truth
    noisy = run(annotators(ev_error_rate=0.25), tasks)
    wrong = np.mean([(r.label == "accept") != (t == "accept") for r, t in zip(noisy, truth)])
    assert 0.19 < wrong < 0.31


def test_ev_accepts_a_crowd_covered_by_individual_masks():
    crowd_pair = next(p for p in POSITIVES if len(p.instances) == 1 and p.instances[0].iscrowd)
    crowd = instance_to_mask(crowd_pair.instances[0])
    from scipy import ndimage

    labels, n = ndimage.label(crowd)
    pieces = [mask_to_instance(labels == k, "model") for k in range(1, n + 1)]
    task = HumanTask(task_id="crowd", kind="ev", media_id=crowd_pair.media_id, phrase=crowd_pair.phrase, masks=pieces)
    assert SimulatedAnnotators(ORACLE, EXACT).judge(task).label == "accept"


def test_correction_noise_and_missed_small_instances():
    tasks = [HumanTask(task_id=f"c-{i}", kind="correction", media_id=p.media_id, phrase=p.phrase)
             for i, p in enumerate(POSITIVES[:400])]
    results = run(annotators(miss_small_rate=0.3, small_area_fraction=0.02), tasks)
    ious, changed, small, missed = [], 0, 0, 0
    for task, result in zip(tasks, results):
        gts = ORACLE.instances(task.media_id, task.phrase)
        masks = [instance_to_mask(i) for i in result.instances]
        assert result.label == ("positive" if masks else "negative")
        assert all(i.source == "human" for i in result.instances)
        for g in gts:
            best = max((iou(m, g.mask) for m in masks), default=0.0)
            is_small = not g.iscrowd and g.area < 0.02 * 224 * 224
            small += is_small
            if best < 0.3:
                assert is_small  # only small separable instances go missing
                continue
            ious.append(best)
            changed += best < 1.0
        missed += len(gts) - len(masks)
        assert sum(i.iscrowd for i in result.instances) == sum(g.iscrowd for g in gts)
    assert small > 400 and 0.24 < missed / small < 0.36
    assert np.median(ious) > 0.75 and changed / len(ious) > 0.5  # a pixel or two off, mostly


def test_three_raters_are_independent_and_deterministic():
    tasks = [HumanTask(task_id=f"g-{i}", kind="correction", media_id=p.media_id, phrase=p.phrase, raters=3)
             for i, p in enumerate(POSITIVES[:5])]
    a = SimulatedAnnotators(ORACLE, seed=4)
    a.submit(tasks)
    first = a.collect()
    assert len(first) == 15 and {r.rater for r in first} == {"simulated-0", "simulated-1", "simulated-2"}
    b = SimulatedAnnotators(ORACLE, seed=4)
    b.submit(tasks[::-1])  # order does not matter
    again = {(r.task_id, r.rater): r for r in b.collect()}
    assert all(again[(r.task_id, r.rater)] == r for r in first)
    per_task = {}
    for r in first:
        per_task.setdefault(r.task_id, []).append(r.instances)
    assert any(len({str(x) for x in v}) > 1 for v in per_task.values())  # raters disagree on boundaries
    c = SimulatedAnnotators(ORACLE, seed=5)
    c.submit(tasks)
    assert [r.seconds for r in c.collect()] != [r.seconds for r in first]


def test_special_phrases():
    media = SAMPLES[0].key
    backend = SimulatedAnnotators(ORACLE, AnnotatorProfile(flag_words=frozenset({"ugly shape"})))
    mask = SAMPLES[0].pairs[0].instances[0]
    cases = {("mv", "background"): "whole_image", ("ev", "Scene"): "whole_image",
             ("ev", "ugly shape"): "flag_label", ("ev", "pink elephant"): "ungroundable",
             ("mv", "pink elephant"): "reject", ("correction", "pink elephant"): "dropped"}
    for (kind, phrase), label in cases.items():
        task = HumanTask(task_id=f"{kind}-{phrase}", kind=kind, media_id=media, phrase=phrase,
                         masks=[mask] if kind == "mv" else [])
        assert backend.judge(task).label == label, (kind, phrase)
    dropped = backend.judge(HumanTask(task_id="d", kind="correction", media_id=media, phrase="pink elephant"))
    assert dropped.reason == "ungroundable" and dropped.instances == []


def test_task_and_result_validation():
    with pytest.raises(ValidationError, match="exactly one mask"):
        HumanTask(task_id="x", kind="mv", media_id="m", phrase="circle")
    with pytest.raises(ValidationError, match="not a ev label"):
        HumanResult(task_id="x", kind="ev", rater="r", label="accept_as_text", seconds=1)
    results = [HumanResult(task_id="x", kind="ev", rater=str(i), label=l, seconds=1)
               for i, l in enumerate(["accept", "reject", "accept"])]
    assert majority_label(results) == "accept" and not unanimous_accept(results)
    assert unanimous_accept(results[::2])


def test_time_model_reproduces_the_paper():
    tm = TimeModel()
    assert tm.pair_seconds(False) == 30 and tm.pair_seconds(False, ai_assisted=True) == 6
    assert tm.pair_seconds(True) == pytest.approx(207) and tm.pair_seconds(True, ai_assisted=True) == pytest.approx(152)
    assert tm.mix_seconds(0.113) == pytest.approx(50, abs=0.5)
    assert tm.mix_seconds(0.113, ai_assisted=True) == pytest.approx(23, abs=0.7)
    rng = np.random.default_rng(0)
    draws = [tm.sample("ev", rng) for _ in range(4000)]
    assert np.mean(draws) == pytest.approx(30, rel=0.03) and np.std(draws) > 5
    assert TimeModel(spread=0).sample("correction", rng, n_instances=2) == 81
    with pytest.raises(ValueError, match="unknown task kind"):
        tm.expected("review")


def test_ai_assisted_tasks_take_less_time():
    tasks, _ = mv_tasks(200)
    slow = run(annotators(), tasks)
    fast = run(annotators(), [t.model_copy(update={"ai_assisted": True}) for t in tasks])
    assert np.mean([r.seconds for r in slow]) / np.mean([r.seconds for r in fast]) == pytest.approx(7.2, rel=0.15)
