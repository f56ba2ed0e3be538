"""How long human tasks take: seconds per task by kind, calibrated on the paper's figures.

Paper (SAM 3 section A.4, reference/sam3.md section 1), seconds per image-NP pair in a new domain:
negatives 30 s human-only -> 6 s with AI MV+EV; positives 207 s -> 152 s; the data mix 50 s -> 23 s.

Mapping to tasks (defaults of `TimeModel`):
- A negative pair costs one EV judgement: `ev` = 30 s human-only, `ev_ai` = 6 s when the human
  confirms the AI verifiers' verdict (`HumanTask.ai_assisted`).
- A positive pair costs MV of each proposed mask + one EV + one correction. With the reference
  positive (`REFERENCE_MASKS` = 5 proposed masks, `REFERENCE_INSTANCES` = 5 GT instances):
  human-only 5 x 7.2 + 30 + 141 = 207 s; AI-assisted 5 x 1.0 + 6 + 141 = 152 s. So `mv` = 7.2 s,
  `mv_ai` = 1.0 s per mask, and a correction is 41 s + 20 s per instance (141 s for 5).
- Check: a mix with 11.3 % positives gives 50 s human-only and 22.5 s AI-assisted, as in the paper.
Each simulated task time is the expected value times a mean-preserving log-normal factor
(sigma `spread`), so averages over many tasks match the table above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REFERENCE_MASKS = 5
REFERENCE_INSTANCES = 5


@dataclass(frozen=True)
class TimeModel:
    mv: float = 7.2  # seconds per mask, human-only
    mv_ai: float = 1.0  # per mask, confirming an AI verdict
    ev: float = 30.0  # per pair
    ev_ai: float = 6.0
    correction_base: float = 41.0  # per correction job
    correction_per_instance: float = 20.0  # per instance in the corrected pair
    spread: float = 0.3  # log-normal sigma of per-task variation (0 = deterministic)

    def expected(self, kind: str, ai_assisted: bool = False, n_instances: int = 0) -> float:
        """Mean seconds of one task: mv (one mask), ev (one pair) or correction (n_instances)."""
        if kind == "mv":
            return self.mv_ai if ai_assisted else self.mv
        if kind == "ev":
            return self.ev_ai if ai_assisted else self.ev
        if kind == "correction":
            return self.correction_base + self.correction_per_instance * max(0, n_instances)
        raise ValueError(f"unknown task kind {kind!r} (mv, ev, correction)")

    def sample(self, kind: str, rng: np.random.Generator, ai_assisted: bool = False,
               n_instances: int = 0) -> float:
        mean = self.expected(kind, ai_assisted, n_instances)
        if self.spread <= 0:
            return mean
        return float(mean * math.exp(self.spread * rng.standard_normal() - self.spread**2 / 2))

    def pair_seconds(self, positive: bool, ai_assisted: bool = False, n_masks: int = REFERENCE_MASKS,
                     n_instances: int = REFERENCE_INSTANCES) -> float:
        """Expected human seconds for a whole pair (see the module docstring for the mapping)."""
        ev = self.expected("ev", ai_assisted)
        if not positive:
            return ev
        correction = self.expected("correction", n_instances=n_instances)
        return n_masks * self.expected("mv", ai_assisted) + ev + correction

    def mix_seconds(self, positive_fraction: float, ai_assisted: bool = False) -> float:
        """Expected seconds per pair of a mix of reference positives and negatives."""
        return (positive_fraction * self.pair_seconds(True, ai_assisted)
                + (1 - positive_fraction) * self.pair_seconds(False, ai_assisted))
