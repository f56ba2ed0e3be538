"""Engine human tasks <-> Label Studio task payloads and annotations.

`task_payload(task, rgb)` builds one Label Studio task to import: `data` with the image (a PNG data
URL: for MV the mask is overlaid, for EV every accepted mask is drawn in its own colour, for a
correction the plain image), the question, the phrase and the engine's task id; a correction task
also carries its proposals as a brush-RLE prediction. `result_from_annotation(...)` turns one
submitted annotation back into a `HumanResult` (label, corrected instances as COCO RLE, seconds
from the annotation's `lead_time`).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from scipy import ndimage

from engine.humans import ls_configs as cfg
from engine.humans.base import HumanResult, HumanTask
from engine.humans.ls_masks import brush_result, result_to_instance
from storage.masks import check_instance_size, instance_to_mask

PALETTE = np.array([(255, 59, 48), (0, 122, 255), (255, 204, 0), (52, 199, 89), (175, 82, 222), (255, 149, 0),
                    (90, 200, 250), (255, 45, 85)], dtype=np.float32)
ENGINE_ID = "engine_task_id"  # the data field holding the engine's task id
PROPOSALS_VERSION = "sam3-engine-proposals"


class AnnotationError(ValueError):
    """An annotation that cannot be read as the task kind's answer (names task and annotation)."""


def data_url(rgb: np.ndarray) -> str:
    """A PNG data URL of an RGB uint8 image."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def overlay(rgb: np.ndarray, masks: list[np.ndarray], alpha: float = 0.45) -> np.ndarray:
    """The image with each mask tinted in its own palette colour and outlined (2 px) in it."""
    out = rgb.astype(np.float32).copy()
    for i, mask in enumerate(masks):
        colour = PALETTE[i % len(PALETTE)]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        edge = mask & ~ndimage.binary_erosion(mask, iterations=2)
        out[edge] = colour
    return np.clip(out, 0, 255).astype(np.uint8)


def question(task: HumanTask) -> str:
    if task.kind == "mv":
        return f'Is the highlighted mask one instance of "{task.phrase}"?'
    if task.kind == "ev":
        return f'Are all instances of "{task.phrase}" masked (each in its own colour)?'
    return f'Mask every instance of "{task.phrase}" (proposals are preloaded: fix, delete or add).'


def task_payload(task: HumanTask, rgb: np.ndarray, model_version: str = PROPOSALS_VERSION) -> dict:
    """One Label Studio task (data, and predictions for a correction) for an engine task."""
    h, w = rgb.shape[:2]
    for k, inst in enumerate(task.masks):
        check_instance_size(inst, h, w, what=f"task {task.task_id!r} mask {k}")
    if task.kind in ("mv", "ev"):
        image = overlay(rgb, [instance_to_mask(m) for m in task.masks])
    else:
        image = rgb
    payload: dict = {"data": {
        "image": data_url(image), "question": question(task), "phrase": task.phrase, ENGINE_ID: task.task_id,
        "kind": task.kind, "media_id": task.media_id, "raters": task.raters, "ai_assisted": task.ai_assisted,
    }}
    if task.kind == "correction" and task.masks:
        scores = [m.score for m in task.masks if m.score is not None]
        payload["predictions"] = [{
            "model_version": model_version,
            "score": float(np.mean(scores)) if scores else None,
            "result": [brush_result(m, cfg.BRUSH, cfg.IMAGE, cfg.CROWD if m.iscrowd else cfg.OBJECT,
                                    region_id=f"p{k}", score=m.score) for k, m in enumerate(task.masks)],
        }]
    return payload


def _field(obj, name, default=None):
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def _choice(results: list[dict], from_name: str) -> str | None:
    for item in results:
        if item.get("from_name") == from_name and str(item.get("type", "")).lower() == "choices":
            choices = (item.get("value") or {}).get("choices") or []
            if choices:
                return str(choices[0])
    return None


def rater_of(annotation) -> str:
    who = _field(annotation, "completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"label-studio:{who}"


def result_from_annotation(kind: str, task_id: str, annotation) -> HumanResult:
    """A `HumanResult` from one Label Studio annotation (dict or SDK object) of an engine task."""
    ann_id = _field(annotation, "id")
    results = list(_field(annotation, "result") or [])
    seconds = float(_field(annotation, "lead_time") or 0.0)
    where = f"task {task_id!r} annotation {ann_id}"
    try:
        if kind in ("mv", "ev"):
            choice = _choice(results, cfg.DECISION)
            if choice is None:
                raise AnnotationError(f"{where}: no {kind} decision chosen")
            return HumanResult(task_id=task_id, kind=kind, rater=rater_of(annotation),
                               label=cfg.label_from_choice(kind, choice), seconds=seconds)
        instances = []
        for item in results:
            if item.get("from_name") in (cfg.BRUSH, cfg.POLYGON):
                inst = result_to_instance(item, source="human")
                if inst is not None:
                    instances.append(inst)
        outcome = _choice(results, cfg.OUTCOME) or ("positive" if instances else "negative")
        outcome = cfg.label_from_choice("correction", outcome)
        reason = None
        if outcome == "positive" and not instances:
            raise AnnotationError(f"{where}: outcome positive but no masks drawn")
        if outcome != "positive":
            instances = []
        if outcome == "dropped":
            reason = _choice(results, cfg.REASON) or "unspecified"
        return HumanResult(task_id=task_id, kind=kind, rater=rater_of(annotation), label=outcome,
                           instances=instances, reason=reason, seconds=seconds)
    except AnnotationError:
        raise
    except ValueError as err:  # label mapping, mask decoding, validation
        raise AnnotationError(f"{where}: {err}") from err
