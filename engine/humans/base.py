"""The human backend interface: tasks go to people (or simulated ones), judgements come back.

Three task kinds, with the paper's label sets (reference/sam3.md section 2):
- `mv` (mask verification): one mask for (image, phrase) -> one of MV_LABELS;
- `ev` (exhaustivity verification): all accepted masks of the pair -> one of EV_LABELS;
- `correction`: the pair's current masks -> the corrected instance masks, with the pair's outcome
  (positive / negative) or `dropped` and a reason (ungroundable, whole_image, flag_label).

A task asks for `raters` independent judgements (3 for gold-style labels); each comes back as its own
`HumanResult` with the rater's id and the seconds the task took. Backends (simulated annotators,
Label Studio) implement `HumanBackend`: `submit` queues tasks, `collect` returns finished results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, field_validator, model_validator

from storage.records import Instance

MV_LABELS = ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
EV_LABELS = ("accept", "reject", "reject_unseparated", "flag_label", "whole_image", "ungroundable")
CORRECTION_LABELS = ("positive", "negative", "dropped")
LABELS: dict[str, tuple[str, ...]] = {"mv": MV_LABELS, "ev": EV_LABELS, "correction": CORRECTION_LABELS}

TaskKind = Literal["mv", "ev", "correction"]


class HumanTask(BaseModel):
    """One unit of human work on an (image, phrase) pair."""

    task_id: str
    kind: TaskKind
    media_id: str
    phrase: str
    media_uri: str | None = Field(None, description="where the image is (file path, file:// or s3:// URI)")
    masks: list[Instance] = Field(default_factory=list,
                                  description="mv: the one mask; ev/correction: current masks")
    raters: int = Field(1, ge=1, le=16, description="independent judgements wanted")
    ai_assisted: bool = Field(False, description="the human sees AI verifier labels (phases 2+): faster")

    @model_validator(mode="after")
    def _mv_has_one_mask(self) -> HumanTask:
        if self.kind == "mv" and len(self.masks) != 1:
            raise ValueError(f"task {self.task_id!r}: an mv task needs exactly one mask, got {len(self.masks)}")
        return self


class HumanResult(BaseModel):
    """One rater's judgement of one task."""

    task_id: str
    kind: TaskKind
    rater: str
    label: str
    instances: list[Instance] = Field(default_factory=list, description="correction only: the corrected masks")
    reason: str | None = None
    seconds: float = Field(ge=0)

    @field_validator("label")
    @classmethod
    def _known_label(cls, label: str, info) -> str:
        kind = info.data.get("kind")
        if kind in LABELS and label not in LABELS[kind]:
            raise ValueError(f"label {label!r} is not a {kind} label (one of {LABELS[kind]})")
        return label


@runtime_checkable
class HumanBackend(Protocol):
    """Where human tasks go. Results come back in any order, one per rater."""

    name: str

    def submit(self, tasks: Sequence[HumanTask]) -> list[str]:
        """Queue tasks; returns their ids. Submitting a task id twice is an error."""
        ...

    def collect(self, task_ids: Sequence[str] | None = None) -> list[HumanResult]:
        """Results finished so far (all raters of a task together), for the given ids or all; each once."""
        ...

    def pending(self) -> list[str]:
        """Ids of submitted tasks whose results have not been collected yet."""
        ...


def unanimous_accept(results: Sequence[HumanResult]) -> bool:
    """Gold rule: a mask (or a pair) is kept only if every rater accepts it."""
    return bool(results) and all(r.label == "accept" for r in results)


def majority_label(results: Sequence[HumanResult]) -> str:
    """The most frequent label (ties broken by the label-set order)."""
    if not results:
        raise ValueError("no results to take a majority of")
    order = LABELS[results[0].kind]
    counts = {label: sum(r.label == label for r in results) for label in order}
    return max(order, key=lambda label: (counts[label], -order.index(label)))
