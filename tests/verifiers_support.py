"""Shared helpers for the verifier tests and bench/verifiers.py: world pairs, simulated decision logs,
and a ground-truth-perturbed stand-in for predictor outputs.

`standin_context(scene, phrase, rng)` is NOT a model: it fabricates a `PairContext` from the
world's exact masks (most instances found with a good mask and a high score, some with a shifted or
swollen mask and a middling score, some missed; some distractor objects detected with low scores;
a semantic map from the GT union) so the learned verifiers' logic can be unit-tested in seconds.
The real predictor is exercised by the tests that say so and by the bench.

`simulate_decisions(contexts, annotators)` runs the human side of one engine pass with simulated
annotators: MV of every proposed mask (score >= `mv_min_score`), EV of each pair's MV-accepted
masks, a correction of every pair EV rejects; it returns the `Decision` log.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from engine.humans.base import HumanTask, majority_label
from engine.world import render_scene, semantics
from engine.world.samples import encode_png, scene_pairs
from storage.masks import encode_rle
from storage.records import Instance, pair_id
from verifiers.context import PairContext, PredInstance
from verifiers.decisions import decisions_from_results


def world_pairs(
    n: int, seed: int, negatives: int = 6, max_positives: int | None = 8, start: int = 0
):
    """[(scene, png bytes, GT pairs)] for images start..start+n-1 of a world seed."""
    sem = semantics()
    out = []
    for i in range(start, start + n):
        scene = render_scene(seed, i, "base", 224)
        pairs = scene_pairs(scene, negatives, max_positives=max_positives, sem=sem)
        out.append((scene, encode_png(scene.image), pairs))
    return out


def _inst(mask: np.ndarray, score: float, query: int, stability: float) -> PredInstance:
    ys, xs = np.nonzero(mask)
    bbox = [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() + 1 - xs.min()),
        float(ys.max() + 1 - ys.min()),
    ]
    return PredInstance(
        score,
        query,
        bbox,
        int(mask.sum()),
        float(np.clip(score + 0.1, 0, 1)),
        encode_rle(mask),
        stability,
        mask,
    )


def standin_context(scene, phrase: str, rng: np.random.Generator, queries: int = 16) -> PairContext:
    """GT-perturbed stand-in for the predictor's output on (scene, phrase) (module docstring)."""
    sem = semantics()
    try:
        targets = {o.id for o in sem.select(phrase, scene.objects)}
    except ValueError:  # outside the world's grammar ("scene", "it"): nothing to find
        targets = set()
    scores = rng.uniform(0, 0.15, queries)
    insts, q = [], 0
    for o in scene.objects:
        if q >= queries:
            break
        mask = scene.mask(o.id)
        if o.id in targets:
            r = rng.random()
            if r < 0.1:
                continue  # missed
            if r < 0.8:
                m, s, st = (
                    np.roll(mask, int(rng.integers(0, 2)), axis=1),
                    rng.uniform(0.55, 0.95),
                    rng.uniform(0.85, 0.98),
                )
            else:
                m = ndimage.binary_dilation(
                    np.roll(mask, int(rng.integers(5, 10)), axis=0), iterations=3
                )
                s, st = rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.8)
        elif rng.random() < 0.25:
            m, s, st = mask, rng.uniform(0.3, 0.65), rng.uniform(0.6, 0.95)
        else:
            continue
        if not m.any():
            continue
        scores[q] = s
        insts.append(_inst(m, float(s), q, float(st)))
        q += 1
    union = np.zeros(scene.labels.shape, bool)
    for t in targets:
        union |= scene.mask(t)
    grid = union[2::4, 2::4]
    sem_map = np.clip(np.where(grid, 0.85, 0.08) + rng.normal(0, 0.05, grid.shape), 0, 1).astype(
        np.float32
    )
    presence = float(np.clip(max(scores.max(), 0.05) + rng.normal(0, 0.05), 0.01, 0.99))
    kept = [i for i in insts if i.score >= 0.3]
    summary = {
        "semantic_area": float((sem_map > 0.5).mean()),
        "semantic_max": float(sem_map.max()),
        "instance_area": 0.0,
        "unexplained_area": 0.0,
        "explained_fraction": 1.0,
    }
    return PairContext(
        224, 224, presence, scores.astype(np.float32), kept, summary, sem_map, None, "standin"
    )


def mv_tasks(contexts: dict, min_score: float = 0.3, raters: int = 3) -> list[HumanTask]:
    tasks = []
    for (media_id, phrase), ctx in contexts.items():
        for inst in ctx.instances:
            if inst.score < min_score:
                continue
            mask = Instance(rle=inst.rle, bbox=inst.bbox, source="model", score=inst.score)
            tasks.append(
                HumanTask(
                    task_id=f"mv:{pair_id(media_id, phrase)}:{inst.query}",
                    kind="mv",
                    media_id=media_id,
                    phrase=phrase,
                    masks=[mask],
                    raters=raters,
                )
            )
    return tasks


def simulate_decisions(
    contexts: dict,
    annotators,
    *,
    raters: int = 3,
    mv_min_score: float = 0.3,
    corrections: bool = True,
):
    """Decision log of MV -> EV -> correction with simulated annotators (module docstring)."""
    tasks = mv_tasks(contexts, mv_min_score, raters)
    annotators.submit(tasks)
    results = annotators.collect([t.task_id for t in tasks])
    by_task: dict[str, list] = {}
    for r in results:
        by_task.setdefault(r.task_id, []).append(r)
    accepted: dict[tuple[str, str], list[Instance]] = {key: [] for key in contexts}
    for t in tasks:
        if majority_label(by_task[t.task_id]) == "accept":
            accepted[(t.media_id, t.phrase)].append(t.masks[0])
    ev = [
        HumanTask(
            task_id=f"ev:{pair_id(m, p)}",
            kind="ev",
            media_id=m,
            phrase=p,
            masks=masks,
            raters=raters,
        )
        for (m, p), masks in accepted.items()
    ]
    annotators.submit(ev)
    ev_results = annotators.collect([t.task_id for t in ev])
    all_tasks, all_results = tasks + ev, results + ev_results
    if corrections:
        ev_by: dict[str, list] = {}
        for r in ev_results:
            ev_by.setdefault(r.task_id, []).append(r)
        fix = [
            HumanTask(
                task_id=f"cor:{pair_id(t.media_id, t.phrase)}",
                kind="correction",
                media_id=t.media_id,
                phrase=t.phrase,
                masks=t.masks,
                raters=1,
            )
            for t in ev
            if majority_label(ev_by[t.task_id]) in ("reject", "reject_unseparated")
        ]
        annotators.submit(fix)
        all_tasks += fix
        all_results += annotators.collect([t.task_id for t in fix])
    return decisions_from_results(all_tasks, all_results)
