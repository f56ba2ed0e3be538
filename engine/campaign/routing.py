"""Routing policy (DESIGN.md "The loop", reference/sam3.md sections 1-2): who decides each pair.

AI side (`route_pair`), per phase mode:
- `human` (phase 1): every proposed mask goes to human MV, then human EV, then correction if EV rejects.
- `hybrid`: MV per mask by P(accept) against calibrated thresholds: auto-accept / auto-reject / human
  MV check. If every mask was settled by AI, EV per pair over the accepted masks (no masks: EV
  presence settles a negative): auto-accept -> final (positive, or negative when no mask survived),
  auto-reject -> human correction, in between -> human EV check. An EV argmax of flag_label /
  whole_image / ungroundable above the accept threshold drops the pair with that reason. A
  deterministic `spot_check_rate` share of AI-final pairs is sent to a human EV check as an audit;
  a human reject overrides the AI (correction).
- `syn`: AI only, no thresholds needed: MV keeps masks with P(accept) >= 0.5; EV accept -> final
  exhaustive; EV reject keeps the masks as a positive with `is_instance_exhaustive` false, or drops
  a pair with no mask ("present per EV but no mask").
Every AI verdict becomes a decision record: source "ai", verifier version, probabilities, outcome.

Human side (`human_step`), a pure function of the route and the human results so far: which tasks
are still needed (MV of the pending masks -> EV of the accepted masks -> correction) or the final
outcome. Rerunning it on the same results gives the same answer, which is what makes
`await_humans` idempotent and resumable.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, fields

from verifiers.calibration import route_by_thresholds

ACCEPT_MV = ("accept", "accept_as_text")
SPECIAL_MV = ("flag_label", "whole_image")
SPECIAL_EV = ("flag_label", "whole_image", "ungroundable")
MV_ORDER = ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
EV_ORDER = ("accept", "reject", "reject_unseparated", "flag_label", "whole_image", "ungroundable")


@dataclass(frozen=True)
class Band:
    """Auto-accept at P(accept) >= accept_at, auto-reject at <= reject_at, humans in between."""

    accept_at: float | None = None
    reject_at: float | None = None

    def route(self, p_accept: float) -> str:
        return route_by_thresholds(p_accept, self.accept_at, self.reject_at)


@dataclass(frozen=True)
class Policy:
    mode: str  # human | hybrid | syn
    mv: Band = Band()
    ev: Band = Band()
    spot_check_rate: float = 0.0
    seed: int = 0

    def spot_check(self, pair_id: str) -> bool:
        if self.spot_check_rate <= 0:
            return False
        h = hashlib.sha256(f"{self.seed}\x1fspot\x1f{pair_id}".encode()).digest()
        return int.from_bytes(h[:8], "little") / 2**64 < self.spot_check_rate


@dataclass
class Route:
    pair_id: str
    outcome: str  # final | human
    label: str | None = None  # final: positive | negative | dropped
    reason: str | None = None
    exhaustive: bool = True
    accepted: list[int] = field(default_factory=list)  # mask indices accepted by AI
    human_mv: list[int] = field(default_factory=list)  # mask indices for human MV
    human_ev: bool = False
    correction: bool = False
    spot_check: bool = False
    ai_label: str | None = None  # spot checks: what the AI had decided
    decisions: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: asdict deep-copies


def p_accept(verdict, task: str) -> float:
    probs = verdict.probs
    return float(probs.get("accept", 0.0) + (probs.get("accept_as_text", 0.0) if task == "mv" else 0.0))


def _argmax(probs: dict, order: tuple) -> str:
    return max(order, key=lambda k: (probs.get(k, 0.0), -order.index(k)))


def _record(kind: str, verdict, outcome: str, mask_index: int | None = None) -> dict:
    return {"kind": kind, "mask_index": mask_index, "source": "ai", "verifier": verdict.verifier,
            "label": verdict.label, "probs": {k: round(float(v), 6) for k, v in verdict.probs.items()},
            "presence": verdict.presence, "error": verdict.error, "outcome": outcome}


def route_pair(policy: Policy, pair_id: str, n_masks: int, mv_verdicts: list | None = None,
               ev_verdict=None) -> Route:
    """The AI-side route of one pair (see the module docstring); verdicts are `verifiers.base.Verdict`s."""
    if policy.mode == "human":
        return Route(pair_id, "human", human_mv=list(range(n_masks)), human_ev=True)
    mv_verdicts = list(mv_verdicts or [None] * n_masks)
    if len(mv_verdicts) != n_masks:
        raise ValueError(f"pair {pair_id}: {n_masks} masks but {len(mv_verdicts)} MV verdicts")
    syn = policy.mode == "syn"
    route = Route(pair_id, "human")
    for i, v in enumerate(mv_verdicts):
        if v is None or v.error or not v.probs:
            decision = "reject" if syn else "human"
        elif syn:
            decision = "accept" if p_accept(v, "mv") >= 0.5 else "reject"
        else:
            decision = policy.mv.route(p_accept(v, "mv"))
        if v is not None:
            route.decisions.append(_record("mv", v, decision, i))
        if decision == "accept":
            route.accepted.append(i)
        elif decision == "human":
            route.human_mv.append(i)
    if ev_verdict is None or ev_verdict.error or not ev_verdict.probs:
        if ev_verdict is not None:
            route.decisions.append(_record("ev", ev_verdict, "human"))
        if syn:
            return _final(route, "dropped", "syn: no EV verdict")
        route.human_ev = True
        return route
    probs = ev_verdict.probs
    top = _argmax(probs, EV_ORDER)
    special_at = 0.5 if syn else policy.ev.accept_at  # uncalibrated (None): humans decide drops
    if route.human_mv:
        route.human_ev = True
        route.decisions.append(_record("ev", ev_verdict, "human (after human MV)"))
        return route
    if top in SPECIAL_EV and special_at is not None and probs.get(top, 0.0) >= special_at:
        route.decisions.append(_record("ev", ev_verdict, f"drop:{top}"))
        return _final(route, "dropped", top)
    p = p_accept(ev_verdict, "ev")
    decision = ("accept" if p >= 0.5 else "reject") if syn else policy.ev.route(p)
    route.decisions.append(_record("ev", ev_verdict, decision))
    if decision == "accept":
        _final(route, "positive" if route.accepted else "negative")
        if not syn and policy.spot_check(pair_id):
            route.ai_label, route.outcome, route.label = route.label, "human", None
            route.spot_check = route.human_ev = True
        return route
    if syn:
        if route.accepted:
            return _final(route, "positive", exhaustive=False)
        return _final(route, "dropped", "syn: present per EV but no mask")
    if decision == "reject":
        route.correction = True
    else:
        route.human_ev = True
    return route


def _final(route: Route, label: str, reason: str | None = None, exhaustive: bool = True) -> Route:
    route.outcome, route.label, route.reason, route.exhaustive = "final", label, reason, exhaustive
    return route


def majority(labels: list[str], order: tuple) -> str:
    counts = Counter(labels)
    return max(order, key=lambda lab: (counts.get(lab, 0), -order.index(lab)))


@dataclass
class HumanOutcome:
    """`human_step`'s answer: tasks still needed, or the final label of the pair."""

    needed: list[tuple[str, int | None, list[int]]] = field(default_factory=list)  # (kind, mask idx, masks)
    label: str | None = None
    reason: str | None = None
    masks: list[int] = field(default_factory=list)  # final: indices of proposal masks kept
    corrected: list[dict] | None = None  # final from correction: instance dicts
    source: str = "human"

    @property
    def final(self) -> bool:
        return self.label is not None


def human_step(route: dict, results: dict[str, list[dict] | str]) -> HumanOutcome:
    """Next human tasks or the final outcome; `results[key]` = rater results or "cancelled".

    Keys: `mv:<mask index>`, `ev`, `correction`; a result dict has `label`, `instances`, `reason`.
    """
    if any(v == "cancelled" for v in results.values()):
        return HumanOutcome(label="dropped", reason="human budget exhausted")
    missing = [i for i in route["human_mv"] if f"mv:{i}" not in results]
    if missing:
        return HumanOutcome(needed=[("mv", i, [i]) for i in missing])
    accepted = list(route["accepted"])
    for i in route["human_mv"]:
        label = majority([r["label"] for r in results[f"mv:{i}"]], MV_ORDER)
        if label in SPECIAL_MV:
            return HumanOutcome(label="dropped", reason=label)
        if label in ACCEPT_MV:
            accepted.append(i)
    accepted.sort()
    if route["human_ev"] and not route["correction"]:
        if "ev" not in results:
            return HumanOutcome(needed=[("ev", None, accepted)])
        label = majority([r["label"] for r in results["ev"]], EV_ORDER)
        if label in SPECIAL_EV:
            return HumanOutcome(label="dropped", reason=label)
        if label == "accept":
            source = "ai" if route.get("spot_check") else "human"
            return HumanOutcome(label="positive" if accepted else "negative", masks=accepted, source=source)
    if "correction" not in results:
        return HumanOutcome(needed=[("correction", None, accepted)])
    first = results["correction"][0]  # one corrector's work is the label (raters > 1 is for checks)
    if first["label"] == "dropped":
        return HumanOutcome(label="dropped", reason=first.get("reason") or "dropped by annotator")
    if first["label"] == "negative":
        return HumanOutcome(label="negative")
    return HumanOutcome(label="positive", corrected=list(first.get("instances") or []))
