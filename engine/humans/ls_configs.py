"""Label Studio labelling configs for the engine's three human task kinds, and their label mapping.

- `mv`: the image with the one mask overlaid, the phrase, and the five MV choices (hotkeys 1-5);
- `ev`: the image with every accepted mask drawn, the phrase, and the six EV choices (hotkeys 1-6);
- `correction`: the image with brush and polygon tools (labels `object` / `crowd`), the proposals
  preloaded as brush predictions, an outcome choice (positive / negative / dropped) and, when
  dropped, a reason.

Choices show readable text; `label_from_choice` maps it back to the engine's label (the label
itself is accepted too). Tag names are constants so task payloads and result parsing agree.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from engine.humans.base import CORRECTION_LABELS, EV_LABELS, MV_LABELS

IMAGE = "image"  # the Image tag (to_name of every result)
DECISION = "decision"  # MV / EV Choices
BRUSH = "masks"  # correction BrushLabels
POLYGON = "polygons"  # correction PolygonLabels
OUTCOME = "outcome"  # correction Choices
REASON = "reason"  # correction Choices (when dropped)
OBJECT, CROWD = "object", "crowd"
DROP_REASONS = ("ungroundable", "whole_image", "flag_label")

DISPLAY: dict[str, str] = {
    "accept": "Accept",
    "accept_as_text": "Accept (text in image)",
    "flag_label": "Flag phrase (offensive / ambiguous)",
    "whole_image": "Whole image",
    "reject": "Reject",
    "reject_unseparated": "Reject: instances not separated",
    "ungroundable": "Ungroundable phrase",
}
HINTS: dict[str, str] = {
    "accept": "the mask is one correct instance of the phrase",
    "accept_as_text": "correct, but the phrase only appears as text",
    "flag_label": "the phrase is offensive, ambiguous or not a noun phrase",
    "whole_image": "the phrase describes the whole image",
    "reject": "the mask is wrong (not the phrase, or a bad outline)",
    "reject_unseparated": "all there, but a group mask should be separate instances",
    "ungroundable": "the phrase cannot be grounded in images",
}
_EV_DISPLAY = {**DISPLAY, "accept": "Accept: every instance is masked", "reject": "Reject: instances missing"}
KIND_LABELS = {"mv": MV_LABELS, "ev": EV_LABELS, "correction": CORRECTION_LABELS}
TITLES = {"mv": "MV", "ev": "EV", "correction": "correction"}


class LabelMappingError(ValueError):
    """An annotation choice that is not one of the task kind's labels."""


def _choices(labels: tuple[str, ...], display: dict[str, str], hotkeys: bool = True) -> str:
    rows = []
    for i, label in enumerate(labels):
        hotkey = f" hotkey=\"{i + 1}\"" if hotkeys else ""
        rows.append(f"    <Choice value={quoteattr(display[label])}{hotkey} hint={quoteattr(HINTS[label])}/>")
    return "\n".join(rows)


def _choice_config(labels, display) -> str:
    return f"""<View>
  <Header value="$question"/>
  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true"/>
  <Choices name="{DECISION}" toName="{IMAGE}" choice="single" required="true" showInline="true">
{_choices(labels, display)}
  </Choices>
</View>"""


def mv_config() -> str:
    return _choice_config(MV_LABELS, DISPLAY)


def ev_config() -> str:
    return _choice_config(EV_LABELS, _EV_DISPLAY)


def correction_config() -> str:
    return f"""<View>
  <Header value="$question"/>
  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true"/>
  <BrushLabels name="{BRUSH}" toName="{IMAGE}">
    <Label value="{OBJECT}" background="#ff3b30"/>
    <Label value="{CROWD}" background="#ffcc00"/>
  </BrushLabels>
  <PolygonLabels name="{POLYGON}" toName="{IMAGE}" strokeWidth="2">
    <Label value="{OBJECT}" background="#007aff"/>
    <Label value="{CROWD}" background="#34c759"/>
  </PolygonLabels>
  <Header value="Outcome (empty: positive when masks exist, else negative)" size="6"/>
  <Choices name="{OUTCOME}" toName="{IMAGE}" choice="single" showInline="true">
    <Choice value="positive"/>
    <Choice value="negative"/>
    <Choice value="dropped"/>
  </Choices>
  <Choices name="{REASON}" toName="{IMAGE}" choice="single" showInline="true"
           visibleWhen="choice-selected" whenTagName="{OUTCOME}" whenChoiceValue="dropped">
{chr(10).join(f'    <Choice value="{r}"/>' for r in DROP_REASONS)}
  </Choices>
</View>"""


CONFIGS = {"mv": mv_config, "ev": ev_config, "correction": correction_config}


def label_config(kind: str) -> str:
    if kind not in CONFIGS:
        raise ValueError(f"task kind {kind!r} has no Label Studio config (one of {sorted(CONFIGS)})")
    return CONFIGS[kind]()


def label_from_choice(kind: str, choice: str) -> str:
    """The engine label of a choice as stored in an annotation (display text or the label itself)."""
    labels = KIND_LABELS[kind]
    if choice in labels:
        return choice
    display = _EV_DISPLAY if kind == "ev" else DISPLAY
    for label in labels:
        if display.get(label) == choice:
            return label
    raise LabelMappingError(f"choice {choice!r} is not a {kind} label (one of {labels})")


def choice_for_label(kind: str, label: str) -> str:
    """The choice value an annotator clicks for an engine label (for API-made annotations and tests)."""
    if label not in KIND_LABELS[kind]:
        raise LabelMappingError(f"label {label!r} is not a {kind} label (one of {KIND_LABELS[kind]})")
    if kind == "correction":
        return label
    return (_EV_DISPLAY if kind == "ev" else DISPLAY)[label]
