"""The verifier interface: MV / EV requests, verdicts with probabilities and a version id, the protocol.

- `MVRequest(media_id, phrase, mask)`: is this one mask a good instance of the phrase?
- `EVRequest(media_id, phrase, masks)`: given these accepted masks, is the pair exhaustive?
Both may carry the image (bytes, path, PIL, array; else a backend resolves `media_id`) and the
predictor's output for the pair (`context`, a `verifiers.context.PairContext`) so a backend that
needs it does not run the model again.

A `Verdict` holds probabilities over the task's whole label set (`verifiers.labels`, in order,
summing to 1), the version id of the verifier that produced it and, for EV requests without masks,
the presence score 1 - P(accept | no masks). A request a backend could not judge comes back with
`error` set and empty probabilities (the caller routes it to humans); a batch never fails on one
bad item. `Verifier.verify(requests)` is batched: one verdict per request, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from storage.records import Instance
from verifiers.labels import labels_for


@dataclass
class MVRequest:
    media_id: str
    phrase: str
    mask: Instance
    image: Any = None
    context: Any = None  # verifiers.context.PairContext
    request_id: str | None = None
    task = "mv"

    @property
    def masks(self) -> list[Instance]:
        return [self.mask]


@dataclass
class EVRequest:
    media_id: str
    phrase: str
    masks: list[Instance] = field(default_factory=list)
    image: Any = None
    context: Any = None
    request_id: str | None = None
    task = "ev"


Request = MVRequest | EVRequest


@dataclass
class Verdict:
    task: str
    probs: dict[str, float]
    verifier: str
    request_id: str | None = None
    presence: float | None = None  # EV with no masks: 1 - P(accept)
    error: str | None = None

    @property
    def label(self) -> str | None:
        """The most probable label (ties: label-set order); None for an errored verdict."""
        if not self.probs:
            return None
        order = labels_for(self.task)
        return max(order, key=lambda lab: (self.probs.get(lab, 0.0), -order.index(lab)))

    def p(self, label: str) -> float:
        return float(self.probs.get(label, 0.0))

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "request_id": self.request_id,
            "label": self.label,
            "probs": self.probs,
            "verifier": self.verifier,
            "presence": self.presence,
            "error": self.error,
        }


def make_verdict(request: Request, probs: Sequence[float], verifier: str) -> Verdict:
    """A verdict from a probability row over the request task's label set (renormalised)."""
    labels = labels_for(request.task)
    if len(probs) != len(labels):
        raise ValueError(
            f"{request.task} verdict needs {len(labels)} probabilities, got {len(probs)}"
        )
    total = float(sum(probs))
    if not total > 0:
        raise ValueError(f"probabilities sum to {total}")
    row = {lab: float(p) / total for lab, p in zip(labels, probs)}
    presence = None
    if request.task == "ev" and not request.masks:
        presence = 1.0 - row["accept"]
    return Verdict(request.task, row, verifier, request.request_id, presence)


def error_verdict(request: Request, verifier: str, reason: str) -> Verdict:
    return Verdict(request.task, {}, verifier, request.request_id, None, reason)


@runtime_checkable
class Verifier(Protocol):
    """One task's verifier ("mv" or "ev"); `version` is stamped on every verdict."""

    task: str
    version: str

    def verify(self, requests: Sequence[Request]) -> list[Verdict]: ...


def check_requests(task: str, requests: Sequence[Any]) -> None:
    """TypeError when a request is not of the verifier's task."""
    want = MVRequest if task == "mv" else EVRequest
    for i, r in enumerate(requests):
        if not isinstance(r, want):
            raise TypeError(
                f"request {i} is a {type(r).__name__}; the {task} verifier takes {want.__name__}"
            )


def presence_requests(
    pairs: Sequence[tuple[str, str]], images: dict | None = None, contexts: dict | None = None
) -> list[EVRequest]:
    """EV requests without masks for (media_id, phrase) pairs: their verdicts' `presence` is EV presence."""
    images, contexts = images or {}, contexts or {}
    return [
        EVRequest(m, p, [], images.get(m), contexts.get((m, p)), request_id=f"{m}\x1f{p}")
        for m, p in pairs
    ]
