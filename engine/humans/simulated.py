"""Simulated annotators: a `HumanBackend` that judges tasks against exact ground truth, with errors.

Each rater of each task gets its own random stream seeded from (seed, task id, rater index), so
results are deterministic and independent of submission order. Behaviour (`AnnotatorProfile`):
- MV: `accept` when the mask's IoU with its best-matching GT instance is >= `mv_accept_iou` (0.8),
  else `reject`; with probability `mv_error_rate` the decision is flipped.
- EV: a GT instance is covered when an accepted mask has IoU >= `ev_cover_iou` (0.5) with it (a crowd
  instance: when the masks cover >= that fraction of it). All covered -> `accept`; otherwise `reject`,
  or `reject_unseparated` when only crowd instances are missing. With probability `ev_error_rate`
  the answer is wrong (accept <-> reject).
- Correction: the GT instances, each with boundary noise (dilated or eroded by 0..`boundary_px`
  pixels, never losing more than half of it), and each small separable instance (area under
  `small_area_fraction` of the image) missed with probability `miss_small_rate`; crowd instances stay crowd masks. No instances -> `negative`.
- Phrases: a phrase in `flag_words` gets `flag_label`, one in `whole_image_words` gets `whole_image`;
  a phrase the world cannot ground gets MV `reject`, EV `ungroundable`, correction `dropped`.
  `accept_as_text` never occurs (the world has no text).
Seconds per task come from `engine.humans.timing.TimeModel`.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage

from engine.humans.base import HumanResult, HumanTask
from engine.humans.timing import TimeModel
from storage.masks import instance_to_mask, mask_to_instance


class GroundTruthSource(Protocol):
    """Exact GT of a pair: objects with `.mask` (bool HxW), `.iscrowd`, `.area`.

    `instances` raises ValueError for a phrase it cannot ground (e.g. PhraseParseError).
    """

    def instances(self, media_id: str, phrase: str) -> list: ...


@dataclass(frozen=True)
class AnnotatorProfile:
    mv_accept_iou: float = 0.8
    mv_error_rate: float = 0.1
    ev_cover_iou: float = 0.5
    ev_error_rate: float = 0.1
    boundary_px: int = 2
    miss_small_rate: float = 0.05
    small_area_fraction: float = 0.004  # 200 px at 224 x 224
    flag_words: frozenset[str] = frozenset()
    whole_image_words: frozenset[str] = frozenset({"image", "picture", "photo", "scene", "background"})


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def boundary_noise(mask: np.ndarray, rng: np.random.Generator, max_px: int) -> np.ndarray:
    """The mask grown or shrunk by 0..max_px pixels; shrinking stops before half the mask is gone."""
    k = int(rng.integers(0, max_px + 1))
    grow = bool(rng.random() < 0.5)
    if k == 0 or not mask.any():
        return mask.copy()
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    y0, y1 = max(0, ys.min() - k - 1), min(h, ys.max() + k + 2)
    x0, x1 = max(0, xs.min() - k - 1), min(w, xs.max() + k + 2)
    local = mask[y0:y1, x0:x1]
    if grow:
        noisy = ndimage.binary_dilation(local, iterations=k)
    else:
        noisy = local
        for _ in range(k):  # thin parts (slivers, small crosses) would vanish: keep at least half
            eroded = ndimage.binary_erosion(noisy)
            if np.count_nonzero(eroded) < 0.5 * len(ys):
                break
            noisy = eroded
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = noisy
    return out


@dataclass
class SimulatedAnnotators:
    """A deterministic crowd of simulated raters over a ground-truth source (the world by default)."""

    truth: GroundTruthSource | None = None
    profile: AnnotatorProfile = field(default_factory=AnnotatorProfile)
    time_model: TimeModel = field(default_factory=TimeModel)
    seed: int = 0
    name: str = "simulated"

    def __post_init__(self) -> None:
        if self.truth is None:
            from engine.world.samples import WorldOracle

            self.truth = WorldOracle()
        self._done: dict[str, list[HumanResult]] = {}
        self.seconds_spent = 0.0

    # --- HumanBackend ----------------------------------------------------------------------------
    def submit(self, tasks: Sequence[HumanTask]) -> list[str]:
        ids = [t.task_id for t in tasks]
        dupes = {i for i, n in Counter(ids).items() if n > 1} | (set(ids) & set(self._done))
        if dupes:
            raise ValueError(f"task id(s) submitted twice: {sorted(dupes)[:5]}")
        for task in tasks:
            self._done[task.task_id] = [self.judge(task, r) for r in range(task.raters)]
        return ids

    def collect(self, task_ids: Sequence[str] | None = None) -> list[HumanResult]:
        wanted = list(self._done) if task_ids is None else [t for t in task_ids if t in self._done]
        return [result for tid in wanted for result in self._done.pop(tid)]

    def pending(self) -> list[str]:
        return list(self._done)

    # --- judging ---------------------------------------------------------------------------------
    def rng(self, task_id: str, rater: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(task_id.encode()), rater])

    def judge(self, task: HumanTask, rater: int = 0) -> HumanResult:
        """One rater's judgement of a task (pure: the same task and rater give the same result)."""
        rng = self.rng(task.task_id, rater)
        judge = {"mv": self._mv, "ev": self._ev, "correction": self._correct}[task.kind]
        label, instances, reason = judge(task, rng)
        n_instances = len(instances) if task.kind == "correction" else 0
        seconds = self.time_model.sample(task.kind, rng, task.ai_assisted, n_instances)
        self.seconds_spent += seconds
        return HumanResult(task_id=task.task_id, kind=task.kind, rater=f"{self.name}-{rater}", label=label,
                           instances=instances, reason=reason, seconds=seconds)

    def _special(self, phrase: str) -> str | None:
        text = " ".join(phrase.lower().split())
        if text in self.profile.flag_words:
            return "flag_label"
        if text in self.profile.whole_image_words:
            return "whole_image"
        return None

    def _truth(self, task: HumanTask) -> list | None:
        try:
            return self.truth.instances(task.media_id, task.phrase)  # type: ignore[union-attr]
        except ValueError:
            return None

    def _mv(self, task: HumanTask, rng: np.random.Generator):
        special = self._special(task.phrase)
        if special:
            return special, [], None
        gts = self._truth(task)
        if gts is None:
            return "reject", [], "ungroundable"
        mask = instance_to_mask(task.masks[0])
        best = max((iou(mask, g.mask) for g in gts), default=0.0)
        correct = "accept" if best >= self.profile.mv_accept_iou else "reject"
        if rng.random() < self.profile.mv_error_rate:
            correct = "reject" if correct == "accept" else "accept"
        return correct, [], None

    def _ev(self, task: HumanTask, rng: np.random.Generator):
        special = self._special(task.phrase)
        if special:
            return special, [], None
        gts = self._truth(task)
        if gts is None:
            return "ungroundable", [], None
        masks = [instance_to_mask(m) for m in task.masks]
        union = np.logical_or.reduce(masks) if masks else None
        missing_separable = missing_crowd = 0
        for g in gts:
            if g.iscrowd:
                overlap = 0 if union is None else np.count_nonzero(union & g.mask)
                covered = overlap >= self.profile.ev_cover_iou * g.area
                missing_crowd += not covered
            else:
                covered = any(iou(m, g.mask) >= self.profile.ev_cover_iou for m in masks)
                missing_separable += not covered
        if missing_separable:
            label = "reject"
        elif missing_crowd:
            label = "reject_unseparated"
        else:
            label = "accept"
        if rng.random() < self.profile.ev_error_rate:
            label = "reject" if label == "accept" else "accept"
        return label, [], None

    def _correct(self, task: HumanTask, rng: np.random.Generator):
        special = self._special(task.phrase)
        if special:
            return "dropped", [], special
        gts = self._truth(task)
        if gts is None:
            return "dropped", [], "ungroundable"
        out = []
        for g in gts:
            h, w = g.mask.shape
            small = g.area < self.profile.small_area_fraction * h * w
            if not g.iscrowd and small and rng.random() < self.profile.miss_small_rate:
                continue
            noisy = boundary_noise(g.mask, rng, self.profile.boundary_px)
            out.append(mask_to_instance(noisy, source="human", iscrowd=g.iscrowd))
        return ("positive" if out else "negative"), out, None
