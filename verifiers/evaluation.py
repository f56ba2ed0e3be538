"""Evaluating verifiers like the paper: accuracy against the majority of the other raters.

For every labelled item with at least three votes and every rater held out in turn, the truth is the
strict majority of the *other* raters' votes (items where they tie are skipped for that rater). The
held-out rater's accuracy against that truth is the human baseline; the verifier's top label is
scored against the same truths, so both numbers average over exactly the same (item, rater) cases.
`run_examples(verifier, examples)` gets the verdicts of labelled `Example`s in one batch;
`evaluate_verifier` adds the calibration report (`verifiers.calibration`) of P(accept).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from verifiers.base import EVRequest, MVRequest, Verdict
from verifiers.calibration import threshold_report
from verifiers.examples import Example


def rater_agreement(examples: Sequence[Example], predicted: Sequence[str | None]) -> dict:
    """AI vs held-out human accuracy against the majority of the other raters (module docstring)."""
    if len(examples) != len(predicted):
        raise ValueError(f"{len(examples)} examples but {len(predicted)} predictions")
    n = ai = human = items = 0
    ai_all = n_all = 0
    for ex, pred in zip(examples, predicted):
        if len(ex.votes) >= 1:
            n_all += 1
            ai_all += pred == ex.majority
        if len(ex.votes) < 3:
            continue
        used = False
        for i, own in enumerate(ex.votes):
            counts = Counter(ex.votes[:i] + ex.votes[i + 1 :]).most_common()
            if len(counts) > 1 and counts[0][1] == counts[1][1]:
                continue  # the other raters tie: no truth for this held-out rater
            truth = counts[0][0]
            n += 1
            human += own == truth
            ai += pred == truth
            used = True
        items += used
    return {
        "items": items,
        "judgements": n,
        "ai_accuracy": ai / n if n else float("nan"),
        "human_accuracy": human / n if n else float("nan"),
        "ai_vs_majority_all": ai_all / n_all if n_all else float("nan"),
    }


def requests_for(
    examples: Sequence[Example], images: dict | None = None, contexts: dict | None = None
) -> list:
    images, contexts = images or {}, contexts or {}
    out = []
    for e in examples:
        img, ctx = images.get(e.media_id), contexts.get((e.media_id, e.phrase))
        if e.task == "mv":
            out.append(MVRequest(e.media_id, e.phrase, e.masks[0], img, ctx, request_id=e.key))
        else:
            out.append(EVRequest(e.media_id, e.phrase, list(e.masks), img, ctx, request_id=e.key))
    return out


def run_examples(
    verifier, examples: Sequence[Example], images: dict | None = None, contexts: dict | None = None
) -> list[Verdict]:
    return verifier.verify(requests_for(examples, images, contexts))


def evaluate_verifier(
    verifier,
    examples: Sequence[Example],
    *,
    precision: float = 0.98,
    min_support: int = 10,
    bound: str = "empirical",
    verdicts: Sequence[Verdict] | None = None,
) -> dict:
    """Agreement with humans plus thresholds/reliability of P(accept) against the majority vote."""
    verdicts = list(verdicts) if verdicts is not None else run_examples(verifier, examples)
    ok = [i for i, v in enumerate(verdicts) if v.error is None]
    agreement = rater_agreement(examples, [v.label for v in verdicts])
    p = np.array([verdicts[i].p("accept") for i in ok])
    y = np.array([examples[i].majority == "accept" for i in ok])
    report = threshold_report(p, y, precision, min_support, bound)
    return {
        "task": verifier.task,
        "verifier": verifier.version,
        "examples": len(examples),
        "errors": len(examples) - len(ok),
        **agreement,
        **report,
    }
