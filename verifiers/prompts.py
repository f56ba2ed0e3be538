"""Multiple-choice prompts for MLLM verifiers: shuffled choice letters, letter log-probs -> label probs.

`build_prompt(task, phrase, seed)` lists the task's labels (`verifiers.labels`, with their
descriptions) under shuffled letters A, B, C, ... (the order is a pure function of the seed, so a
request is reproducible) and asks for one letter. `letter_logprobs(top_logprobs, letters)` reads a
one-token answer's top log-probabilities (OpenAI / vLLM `top_logprobs` entries, or a local model's
pairs), folding token variants (" A", "A.", "(A)") into their letter with log-sum-exp.
`label_probs(logprobs, choice)` un-shuffles and softmaxes over the offered letters (a letter absent
from the top list gets probability 0), returning probabilities in the label-set order.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from verifiers.labels import DESCRIPTIONS, labels_for

PROMPT_VERSION = 1
LETTERS = "ABCDEFGHIJ"
_TOKEN_RE = re.compile(r"^\W*([A-Z])\W*$")

INTRO = {
    "mv": (
        "The image shows two views of one region: on the left, a zoomed-out view with a red box around "
        "an object; on the right, a zoomed-in view with a candidate mask drawn in blue. Does the mask "
        'show an instance of the phrase "{phrase}"?'
    ),
    "ev": (
        'The image shows every instance of the phrase "{phrase}" found so far as a red box (no boxes: '
        "none found). Are all instances of the phrase in the image boxed?"
    ),
}


@dataclass(frozen=True)
class Choice:
    """One prompt: its text and which letter stands for which label."""

    task: str
    text: str
    letters: dict[str, str]  # letter -> label

    @property
    def offered(self) -> list[str]:
        return list(self.letters)


def request_seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


def build_prompt(task: str, phrase: str, seed: int) -> Choice:
    labels = list(labels_for(task))
    order = np.random.default_rng(seed).permutation(len(labels))
    letters = {LETTERS[i]: labels[j] for i, j in enumerate(order)}
    lines = [INTRO[task].format(phrase=phrase), "", "Choices:"]
    lines += [f"{letter}. {DESCRIPTIONS[task][label]}" for letter, label in letters.items()]
    lines += ["", f"Answer with one letter ({', '.join(letters)})."]
    return Choice(task, "\n".join(lines), letters)


def letter_logprobs(top: Iterable, letters: Iterable[str]) -> dict[str, float]:
    """{letter: log-prob} from top-log-prob entries (dicts with token/logprob, or (token, logprob))."""
    wanted = set(letters)
    acc: dict[str, list[float]] = {}
    for entry in top:
        token, lp = (entry["token"], entry["logprob"]) if isinstance(entry, Mapping) else entry
        m = _TOKEN_RE.match(str(token).strip())
        if m and m.group(1) in wanted and lp is not None and math.isfinite(float(lp)):
            acc.setdefault(m.group(1), []).append(float(lp))
    return {k: float(np.logaddexp.reduce(v)) for k, v in acc.items()}


def label_probs(logprobs: Mapping[str, float], choice: Choice) -> list[float]:
    """Probabilities over the task's labels (label-set order); ValueError when no letter was scored."""
    scored = {k: v for k, v in logprobs.items() if k in choice.letters}
    if not scored:
        raise ValueError(
            f"none of the choice letters {choice.offered} is among the answer's top tokens"
        )
    top = max(scored.values())
    weights = {choice.letters[k]: math.exp(v - top) for k, v in scored.items()}
    total = sum(weights.values())
    return [weights.get(label, 0.0) / total for label in labels_for(choice.task)]
