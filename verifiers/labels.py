"""The verifiers' categorical label sets (SAM 3 paper, §D.4 / reference/sam3.md §2) and their meanings.

`MV_LABELS` (mask verification, one mask) and `EV_LABELS` (exhaustivity verification, all accepted
masks of a pair) are the single source of these tuples: the human backends' label sets must equal
them (engine/humans may import them from here). `DESCRIPTIONS` holds one-line definitions in our
own words, used by the MLLM prompt.
"""

from __future__ import annotations

MV_LABELS: tuple[str, ...] = ("accept", "accept_as_text", "flag_label", "whole_image", "reject")
EV_LABELS: tuple[str, ...] = (
    "accept",
    "reject",
    "reject_unseparated",
    "flag_label",
    "whole_image",
    "ungroundable",
)
LABELS: dict[str, tuple[str, ...]] = {"mv": MV_LABELS, "ev": EV_LABELS}
TASKS = ("mv", "ev")

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "mv": {
        "accept": "the mask shows one instance of the phrase and its boundary is good (need not be "
        "pixel-perfect)",
        "accept_as_text": "the mask covers written text that matches the phrase",
        "flag_label": "the phrase is sensitive or offensive (race, religion, slurs, animal words for "
        "people)",
        "whole_image": "the phrase describes the whole scene, medium or location, not an object",
        "reject": "the mask does not show an instance of the phrase, or its boundary is poor",
    },
    "ev": {
        "accept": "every instance of the phrase in the image is already boxed; nothing is missing",
        "reject": "some instance of the phrase is missing and could be separated from the others",
        "reject_unseparated": "instances are missing but they cannot be separated (a crowd or group)",
        "flag_label": "the phrase is sensitive or offensive (race, religion, slurs, animal words for "
        "people)",
        "whole_image": "the phrase describes the whole scene, medium or location, not an object",
        "ungroundable": "the phrase is vague or cannot be located in images; unsure",
    },
}


def labels_for(task: str) -> tuple[str, ...]:
    """The label set of a task ("mv" or "ev"); ValueError naming the task otherwise."""
    try:
        return LABELS[task]
    except KeyError:
        raise ValueError(f"unknown verifier task {task!r} (one of {TASKS})") from None
