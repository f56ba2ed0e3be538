"""What a Label Studio project asks of the SAM 3 ML backend: its tags, a task's image and prompts.

`parse_label_config(xml)` finds the Image tag (and its `$field`), the BrushLabels tag that predictions
go to (with its labels), an optional TextArea (typed prompts) and an optional RectangleLabels tag
(exemplar boxes). `task_prompts(task, spec, context)` gives the prompts of one task: text typed in
the TextArea (interactive context) or found in task data (`prompt`, `phrase`, `text`, `caption`, or
the TextArea's `$field`), with exemplar boxes drawn as rectangles (label `negative` / `exclude`: a
negative exemplar) or given in `data.exemplars` (pixel [x, y, w, h]); with no text at all, every
BrushLabels label is a prompt (the project's label set is the concept list). `load_task_image`
reads data URLs and http(s) URLs (Label Studio's own, e.g. uploads, with its token); never a local
path named by a task.
"""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlparse

import httpx
import numpy as np

DATA_PROMPT_KEYS = ("prompt", "phrase", "text", "caption")
NEGATIVE_BOX_LABELS = {"negative", "exclude", "background"}


class LabelConfigError(ValueError):
    """A labelling config the backend cannot predict for (names the missing tag)."""


class TaskInputError(ValueError):
    """A task whose image or prompt cannot be read (names the task and the field)."""


@dataclass
class ConfigSpec:
    image_name: str
    image_key: str  # task data field holding the image
    brush_name: str
    labels: list[str]
    textarea_name: str | None = None
    textarea_key: str | None = None
    rect_name: str | None = None
    extra: dict = field(default_factory=dict)


def _tags(root: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.tag.lower() == tag.lower()]


def parse_label_config(xml: str) -> ConfigSpec:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise LabelConfigError(f"label config is not valid XML: {err}") from None
    images = _tags(root, "Image")
    if not images:
        raise LabelConfigError("label config has no <Image> tag: the SAM 3 backend segments images")
    image = images[0]
    brushes = [b for b in _tags(root, "BrushLabels") if b.get("toName", "").split(",")[0] == image.get("name")]
    if not brushes:
        raise LabelConfigError(f"label config has no <BrushLabels> tag on image {image.get('name')!r}: "
                               "predictions are brush masks")
    brush = brushes[0]
    labels = [lab.get("value") for lab in brush if lab.tag == "Label" and lab.get("value")]
    if not labels:
        raise LabelConfigError(f"<BrushLabels name={brush.get('name')!r}> has no <Label value=...>")
    spec = ConfigSpec(image_name=image.get("name", "image"), image_key=image.get("value", "$image").lstrip("$"),
                      brush_name=brush.get("name", "tag"), labels=labels)
    areas = _tags(root, "TextArea")
    if areas:
        spec.textarea_name = areas[0].get("name")
        value = areas[0].get("value") or ""
        spec.textarea_key = value[1:] if value.startswith("$") else None
    rects = _tags(root, "RectangleLabels")
    if rects:
        spec.rect_name = rects[0].get("name")
    return spec


@dataclass
class TaskPrompts:
    phrases: list[str]
    boxes: list[list[float]] = field(default_factory=list)  # pixel xywh
    box_labels: list[int] = field(default_factory=list)


def _context_items(context: dict | None) -> list[dict]:
    if not isinstance(context, dict):
        return []
    return [r for r in context.get("result") or [] if isinstance(r, dict)]


def task_prompts(task: dict, spec: ConfigSpec, context: dict | None, width: int, height: int) -> TaskPrompts:
    data = task.get("data") or {}
    phrases: list[str] = []
    boxes: list[list[float]] = []
    box_labels: list[int] = []
    for item in _context_items(context):
        kind = str(item.get("type", "")).lower()
        value = item.get("value") or {}
        if kind == "textarea":
            phrases += [str(t).strip() for t in value.get("text") or [] if str(t).strip()]
        elif kind in ("rectanglelabels", "rectangle"):
            w_pct, h_pct = float(value.get("width", 0)), float(value.get("height", 0))
            if w_pct <= 0 or h_pct <= 0:
                continue
            boxes.append([float(value["x"]) * width / 100, float(value["y"]) * height / 100,
                          w_pct * width / 100, h_pct * height / 100])
            names = {str(v).lower() for v in value.get("rectanglelabels") or []}
            box_labels.append(0 if names & NEGATIVE_BOX_LABELS else 1)
    if not phrases:
        keys = ([spec.textarea_key] if spec.textarea_key else []) + list(DATA_PROMPT_KEYS)
        for key in keys:
            text = data.get(key)
            if isinstance(text, str) and text.strip():
                phrases = [text.strip()]
                break
            if isinstance(text, list) and all(isinstance(t, str) for t in text) and text:
                phrases = [t.strip() for t in text if t.strip()]
                break
    if not boxes and isinstance(data.get("exemplars"), list):
        for b in data["exemplars"]:
            if not (isinstance(b, (list, tuple)) and len(b) == 4):
                raise TaskInputError(f"task {task.get('id')}: data.exemplars must be [x, y, w, h] boxes, got {b!r}")
            boxes.append([float(v) for v in b])
            box_labels.append(1)
    if not phrases:
        phrases = list(spec.labels)
    return TaskPrompts(phrases, boxes, box_labels)


def region_label(phrase: str, labels: list[str]) -> str:
    """The BrushLabels label for a phrase's regions: the label itself when it is one, else the first."""
    for label in labels:
        if label.lower() == phrase.lower():
            return label
    return labels[0]


_ACCESS: dict[tuple[str, str], tuple[float, str]] = {}  # (host, refresh token) -> (expiry, access token)
ACCESS_TTL_S = 120.0


def _auth_headers(key: str | None, host: str) -> dict:
    if not key:
        return {}
    if key.count(".") == 2:  # a personal access token (JWT refresh token): exchange it, reuse a while
        cached = _ACCESS.get((host, key))
        if cached is None or cached[0] < time.monotonic():
            r = httpx.post(urljoin(host + "/", "api/token/refresh/"), json={"refresh": key}, timeout=30)
            r.raise_for_status()
            cached = (time.monotonic() + ACCESS_TTL_S, r.json()["access"])
            _ACCESS[(host, key)] = cached
        return {"Authorization": f"Bearer {cached[1]}"}
    return {"Authorization": f"Token {key}"}


def load_task_image(task: dict, spec: ConfigSpec, ls_url: str | None = None, ls_key: str | None = None) -> np.ndarray:
    """The task's RGB image: a data URL or an http(s) URL (Label Studio's own read with its token)."""
    from model.preprocess import ImageDecodeError, load_image

    src = (task.get("data") or {}).get(spec.image_key)
    tid = task.get("id")
    if not isinstance(src, str) or not src:
        raise TaskInputError(f"task {tid}: data.{spec.image_key} (the image) is missing")
    try:
        if src.startswith("data:"):
            head, _, body = src.partition(",")
            raw = base64.b64decode(body) if ";base64" in head else body.encode()
            return load_image(raw, tid)
        if src.startswith("/") and not src.startswith("//"):  # served by Label Studio (uploads, local files)
            if not ls_url:
                raise TaskInputError(f"task {tid}: image {src[:80]!r} is on the Label Studio server, whose URL "
                                     "is unknown: set LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY)")
            src = urljoin(ls_url.rstrip("/") + "/", src.lstrip("/"))
        if not src.startswith(("http://", "https://")):  # never read this machine's files for a task
            raise TaskInputError(f"task {tid}: image {src[:80]!r} is not a data URL or an http(s) URL")
        same_host = ls_url and urlparse(src).netloc == urlparse(ls_url).netloc
        headers = _auth_headers(ls_key, ls_url) if same_host else {}
        r = httpx.get(src, headers=headers, timeout=60, follow_redirects=True)
        r.raise_for_status()
        return load_image(r.content, tid)
    except TaskInputError:
        raise
    except (ImageDecodeError, httpx.HTTPError, ValueError, OSError) as err:
        raise TaskInputError(f"task {tid}: cannot read image data.{spec.image_key} ({src[:80]!r}): {err}") from None

