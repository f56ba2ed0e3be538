"""Decision logs -> labelled MV and EV examples (one per human task, with every rater's vote).

- MV / EV decisions are grouped by task id: one `Example` holding the masks shown and the votes.
- Corrections add examples as the SAM 3 engine did (reference/sam3.md section 2): every mask a human
  added (an output instance matching no input mask at IoU >= `match_iou`) is an MV `accept`, and an
  input mask the human removed (no output instance matches it) an MV `reject`; every finished
  correction is an EV example: its corrected masks are exhaustive (`accept`; a dropped pair gives its
  reason when that is an EV label), and when the human added a separable instance the input masks
  were not (`reject`; `reject_unseparated` when only crowd masks were added).
Votes outside the task's label set are skipped and counted in `ExampleSet.skipped`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from storage.masks import instance_to_mask
from storage.records import Instance
from verifiers.decisions import Decision
from verifiers.labels import EV_LABELS, labels_for


@dataclass
class Example:
    task: str
    key: str
    media_id: str
    phrase: str
    masks: list[Instance]
    votes: list[str]
    raters: list[str] = field(default_factory=list)
    source: str = "human"  # mv | ev | correction
    media_uri: str | None = None

    @property
    def majority(self) -> str:
        """Most frequent vote (ties broken by label-set order, as the human backends do)."""
        order = labels_for(self.task)
        counts = Counter(self.votes)
        return max(order, key=lambda lab: (counts[lab], -order.index(lab)))


@dataclass
class ExampleSet:
    mv: list[Example] = field(default_factory=list)
    ev: list[Example] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def of(self, task: str) -> list[Example]:
        return self.mv if task == "mv" else self.ev


def _iou_matrix(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.count_nonzero(x | y)
            out[i, j] = np.count_nonzero(x & y) / union if union else 0.0
    return out


def _correction_examples(d: Decision, match_iou: float) -> tuple[list[Example], list[Example]]:
    mv, ev = [], []
    base = f"{d.task_id}#{d.rater}"
    common = {
        "media_id": d.media_id,
        "phrase": d.phrase,
        "raters": [d.rater],
        "source": "correction",
        "media_uri": d.media_uri,
    }
    if d.label == "dropped":
        if d.reason in EV_LABELS:
            ev.append(
                Example("ev", f"{base}#final", masks=list(d.masks), votes=[d.reason], **common)
            )
        return mv, ev
    inputs = [instance_to_mask(m) for m in d.masks]
    outputs = [instance_to_mask(m) for m in d.instances]
    iou = _iou_matrix(outputs, inputs)
    added = [k for k in range(len(outputs)) if not len(inputs) or iou[k].max() < match_iou]
    removed = [j for j in range(len(inputs)) if not len(outputs) or iou[:, j].max() < match_iou]
    for k in added:
        mv.append(
            Example("mv", f"{base}#add{k}", masks=[d.instances[k]], votes=["accept"], **common)
        )
    for j in removed:
        mv.append(Example("mv", f"{base}#rm{j}", masks=[d.masks[j]], votes=["reject"], **common))
    ev.append(Example("ev", f"{base}#final", masks=list(d.instances), votes=["accept"], **common))
    if added:
        crowd_only = all(d.instances[k].iscrowd for k in added)
        ev.append(
            Example(
                "ev",
                f"{base}#before",
                masks=list(d.masks),
                votes=["reject_unseparated" if crowd_only else "reject"],
                **common,
            )
        )
    return mv, ev


def build_examples(
    decisions: Iterable[Decision], *, use_corrections: bool = True, match_iou: float = 0.5
) -> ExampleSet:
    """Group decisions into MV and EV examples (see module docstring)."""
    out = ExampleSet()
    groups: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.kind == "correction":
            if use_corrections:
                mv, ev = _correction_examples(d, match_iou)
                out.mv += mv
                out.ev += ev
            continue
        if d.label not in labels_for(d.kind):
            out.skipped[f"{d.kind}:{d.label}"] += 1
            continue
        groups.setdefault(d.task_id, []).append(d)
    for task_id, ds in groups.items():
        first = ds[0]
        if any(d.kind != first.kind for d in ds):
            raise ValueError(f"task {task_id!r} has decisions of several kinds")
        ex = Example(
            first.kind,
            task_id,
            first.media_id,
            first.phrase,
            list(first.masks),
            [d.label for d in ds],
            [d.rater for d in ds],
            first.kind,
            first.media_uri,
        )
        out.of(first.kind).append(ex)
    return out
