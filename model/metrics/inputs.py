"""Reading and validating the metric inputs: SA-Co gold GT documents and COCO-results predictions.

GT (reference/sam3.md §5): `images[]` holds one entry per image-NP pair (`id`, `height`, `width`,
`is_instance_exhaustive`, ...); `annotations[]` carry `image_id` = the pair id, `bbox` [x, y, w, h]
normalised by the image size, `segmentation` (compressed RLE, uncompressed RLE or polygons) and
`iscrowd`. Predictions: a list of `{image_id, score, segmentation (compressed RLE), bbox}`; their
`bbox` is normalised [x, y, w, h] like the GT's (the official SA-Co gold configs dump boxes with
`use_original_sizes: false`, i.e. scaled by 1, and compare them as-is with the normalised GT
boxes). `category_id` is ignored: every pair is its own single-concept "image".

Every problem is reported as a `MetricsInputError` naming the file, the entry, the pair id, the
field and the bad value. Pair ids may be ints or strings (never both for one pair: 5 and "5"
differ).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from model.metrics.rle import compressed_counts_problems, uncompressed_counts_problem

IOU_TYPES = ("segm", "bbox")
_MAX_LISTED = 10
_BOX_RANGE = (-0.5, 1.5)  # normalised boxes lie in [0, 1]; pixel boxes fall far outside


class MetricsInputError(ValueError):
    """A GT or prediction file the metrics cannot use; the message lists each problem found."""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Problems:
    """Collects problems and raises one error listing the first few."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        listed = "\n".join(f"  - {m}" for m in self.items[:_MAX_LISTED])
        more = len(self.items) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise MetricsInputError(f"{len(self.items)} problem(s) in {self.what}:\n{listed}{tail}")


def _at(where: tuple) -> str:
    """Format a location (list name, index, pair id or None) only when a problem is reported."""
    name, index, pid = where
    return f"{name}[{index}]" if pid is None else f"{name}[{index}] (pair {pid!r})"


def _is_pair_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(source: str | PathLike, what: str) -> Any:
    path = Path(source)
    try:
        with path.open("rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise MetricsInputError(f"{what} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MetricsInputError(f"{what} file {str(path)!r} cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise MetricsInputError(f"{what} file {str(path)!r} is not valid JSON: {err}") from None


# ------------------------------------------------------------------------------ segmentation


@dataclass
class _RleCheck:
    """Compressed RLE strings gathered from one file, checked together at the end."""

    counts: list[str] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    where: list[tuple] = field(default_factory=list)

    def run(self, problems: _Problems) -> None:
        for where, counts, problem in zip(
            self.where, self.counts, compressed_counts_problems(self.counts, self.totals)
        ):
            if problem:
                problems.add(f"{_at(where)}: segmentation.counts {_short(counts)} {problem}")


def _segmentation(seg: Any, hw: tuple[int, int] | None, where: tuple, problems: _Problems,
                  rles: _RleCheck) -> Any:
    """Check one segmentation; return what pycocotools' iou takes (an RLE dict), or None if bad.
    `hw` is the pair's image size, or None when it is not known yet (then the RLE's own size is
    used).
    """
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if counts is None or size is None:
            missing = "counts" if counts is None else "size"
            problems.add(f"{_at(where)}: segmentation {_short(seg)} has no {missing!r} "
                         "(an RLE needs size and counts)")
            return None
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
            problems.add(f"{_at(where)}: segmentation.size {_short(size)} is not [height, width]")
            return None
        if hw is not None and tuple(size) != hw:
            problems.add(f"{_at(where)}: segmentation.size {list(size)} does not match the image "
                         f"(height, width) = {list(hw)}")
            return None
        h, w = size
        if isinstance(counts, bytes):
            try:
                counts = counts.decode("ascii")
            except UnicodeDecodeError:
                problems.add(f"{_at(where)}: segmentation.counts {_short(counts)} is not ASCII")
                return None
            seg = {"size": [h, w], "counts": counts}
        if isinstance(counts, str):
            rles.counts.append(counts)
            rles.totals.append(h * w)
            rles.where.append(where)
            return seg
        if isinstance(counts, list):
            problem = uncompressed_counts_problem(counts, h * w)
            if problem:
                problems.add(f"{_at(where)}: segmentation.counts (uncompressed RLE) {problem}")
                return None
            return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        problems.add(f"{_at(where)}: segmentation.counts {_short(counts)} is neither a string "
                     "nor a list")
        return None
    if isinstance(seg, list):
        if not seg or not all(isinstance(p, list) and len(p) >= 4 and len(p) % 2 == 0
                              and all(_is_real(c) for c in p) for p in seg):
            problems.add(f"{_at(where)}: segmentation {_short(seg)} is not a list of polygons "
                         "[[x1, y1, x2, y2, ...], ...]")
            return None
        if hw is None:  # a polygon has no size of its own: rasterised once the image is known
            return seg
        try:  # as pycocotools' COCO.annToRLE does
            return mask_utils.merge(mask_utils.frPyObjects(seg, hw[0], hw[1]))
        except Exception as err:  # noqa: BLE001 - pycocotools raises bare Exceptions
            problems.add(f"{_at(where)}: segmentation polygons {_short(seg)} rejected by "
                         f"pycocotools: {err}")
            return None
    problems.add(f"{_at(where)}: segmentation {_short(seg)} is neither an RLE dict nor a list of "
                 "polygons")
    return None


def _box(box: Any, where: tuple, problems: _Problems, normalised: bool) -> list[float] | None:
    if (not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_real(c) for c in box)):
        problems.add(f"{_at(where)}: bbox {_short(box)} is not [x, y, w, h] of 4 finite numbers")
        return None
    x, y, w, h = (float(c) for c in box)
    if w < 0 or h < 0:
        problems.add(f"{_at(where)}: bbox {_short(box)} has a negative width or height")
        return None
    lo, hi = _BOX_RANGE
    if normalised and (min(x, y) < lo or max(x + w, y + h) > hi):
        problems.add(f"{_at(where)}: bbox {_short(box)} is not normalised by the image size "
                     "(SA-Co boxes are [x, y, w, h] / [width, height, width, height])")
        return None
    return [x, y, w, h]


# ------------------------------------------------------------------------------------------ GT


@dataclass
class GTPair:
    """One image-NP pair of one GT document: only its non-crowd instances take part in matching."""

    height: int
    width: int
    exhaustive: bool
    segms: list = field(default_factory=list)  # pycocotools RLEs of the non-crowd instances
    boxes: list = field(default_factory=list)  # normalised [x, y, w, h] of the non-crowd instances
    n_crowd: int = 0


@dataclass
class GroundTruth:
    name: str
    pairs: dict[Any, GTPair]
    order: list  # pair ids in the document's order


def _image_problems(img: Any, i: int, pairs: dict, problems: _Problems) -> None:
    """Report why images[i] is unusable (the slow path of index_gt)."""
    if not isinstance(img, dict):
        problems.add(f"images[{i}]: {_short(img)} is not an object")
        return
    pid = img.get("id")
    if not _is_pair_id(pid):
        problems.add(f"images[{i}]: id {_short(pid)} is not an int or string pair id")
        return
    where = _at(("images", i, pid))
    if pid in pairs:
        problems.add(f"{where}: id {pid!r} appears twice")
    for key in ("height", "width"):
        v = img.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            problems.add(f"{where}: {key} {_short(v)} is not a positive integer")
    ex = img.get("is_instance_exhaustive")
    if ex not in (0, 1) or type(ex) not in (int, bool):
        problems.add(f"{where}: is_instance_exhaustive {_short(ex)} is not 0/1 (or true/false)")


def index_gt(doc: Any, name: str, iou_type: str | None) -> GroundTruth:
    """Validate a GT document; `iou_type` names the field every annotation must have (None: only
    check what is there)."""
    problems = _Problems(name)
    if not isinstance(doc, dict):
        raise MetricsInputError(f"{name}: a GT document is a JSON object with images[] and "
                                f"annotations[], not {type(doc).__name__}")
    images, anns = doc.get("images"), doc.get("annotations", [])
    if not isinstance(images, list):
        raise MetricsInputError(f"{name}: 'images' must be a list (one entry per image-NP pair), "
                                f"got {_short(images)}")
    if not isinstance(anns, list):
        raise MetricsInputError(f"{name}: 'annotations' must be a list, got {_short(anns)}")
    pairs: dict[Any, GTPair] = {}
    order: list = []
    for i, img in enumerate(images):
        if type(img) is dict:  # the common, valid case without per-field work
            pid, h, w = img.get("id"), img.get("height"), img.get("width")
            ex = img.get("is_instance_exhaustive")
            if ((type(pid) is int or type(pid) is str) and type(h) is int and type(w) is int
                    and h > 0 and w > 0 and ex in (0, 1) and type(ex) in (int, bool)
                    and pid not in pairs):
                pairs[pid] = GTPair(h, w, bool(ex))
                order.append(pid)
                continue
        _image_problems(img, i, pairs, problems)
    rles = _RleCheck()
    check_seg, check_box = iou_type != "bbox", iou_type != "segm"  # None: check both
    for j, ann in enumerate(anns):
        pid = ann.get("image_id") if type(ann) is dict else None
        pair = pairs.get(pid) if type(pid) is int or type(pid) is str else None
        if pair is None:
            if type(ann) is not dict:
                problems.add(f"annotations[{j}]: {_short(ann)} is not an object")
            else:
                problems.add(f"annotations[{j}]: image_id {_short(pid)} is not the id of any pair "
                             "in images[]")
            continue
        where = ("annotations", j, pid)
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or type(crowd) not in (int, bool):
            problems.add(f"{_at(where)}: iscrowd {_short(crowd)} is not 0/1")
            continue
        seg = box = None
        # only the field the IoU uses is checked (both when no iou_type is given)
        if check_seg:
            if "segmentation" in ann:
                seg = _segmentation(ann["segmentation"], (pair.height, pair.width), where, problems,
                                    rles)
            elif iou_type == "segm":
                problems.add(f"{_at(where)}: no 'segmentation' (needed for iou_type 'segm')")
        if check_box:
            if "bbox" in ann:
                box = _box(ann["bbox"], where, problems, normalised=iou_type == "bbox")
            elif iou_type == "bbox":
                problems.add(f"{_at(where)}: no 'bbox' (needed for iou_type 'bbox')")
        if crowd:
            pair.n_crowd += 1  # crowd GT is dropped from matching (pycocotools marks it 'ignore')
        else:
            pair.segms.append(seg)
            pair.boxes.append(box)
    rles.run(problems)
    problems.raise_if_any()
    return GroundTruth(name, pairs, order)


def load_gt(path_or_dict: str | PathLike | dict) -> dict:
    """Read (if a path) and validate a SA-Co gold GT document; return it as a dict.
    Raises MetricsInputError naming each bad field, pair id and value."""
    if isinstance(path_or_dict, dict):
        doc, name = path_or_dict, "GT document"
    else:
        doc, name = _read_json(path_or_dict, "GT"), f"GT file {str(path_or_dict)!r}"
    index_gt(doc, name, None)
    return doc


# ------------------------------------------------------------------------------- predictions


@dataclass
class PredictionIndex:
    """Predictions grouped by pair, in file order; only those with score >= the gate are kept."""

    kept: dict[Any, list]  # pair id -> list of RLEs (segm) or [x, y, w, h] (bbox)
    n_total: int
    n_kept: int


def _check_prediction_list(preds: Any, name: str, problems: _Problems) -> list[dict]:
    if not isinstance(preds, list):
        raise MetricsInputError(f"{name}: predictions must be a JSON list of COCO results, "
                                f"got {type(preds).__name__}")
    return preds


def index_predictions(preds: Any, name: str, gts: list[GroundTruth] | None, iou_type: str | None,
                      gate: float = 0.5) -> PredictionIndex:
    """Validate predictions (against the GT documents when given); group those scoring >= gate."""
    problems = _Problems(name)
    _check_prediction_list(preds, name, problems)
    sizes: dict[Any, tuple[int, int]] = {}
    known: set = set()
    if gts:
        for gt in gts:
            for pid, pair in gt.pairs.items():
                sizes.setdefault(pid, (pair.height, pair.width))
            known.update(gt.pairs)
    kept: dict[Any, list] = {}
    rles = _RleCheck()
    n_kept = 0
    for i, pred in enumerate(preds):
        if type(pred) is not dict:
            problems.add(f"predictions[{i}]: {_short(pred)} is not an object")
            continue
        pid = pred.get("image_id")
        if not (type(pid) is int or type(pid) is str):
            problems.add(f"predictions[{i}]: image_id {_short(pid)} is missing or not an int or "
                         "string pair id")
            continue
        where = ("predictions", i, pid)
        if gts is not None and pid not in known:
            alt = str(pid) if isinstance(pid, int) else (int(pid) if pid.isdigit() else None)
            hint = f" (the GT has {alt!r}: ids must match in type too)" if alt in known else ""
            problems.add(f"{_at(where)}: image_id {pid!r} is not a pair in the GT{hint}")
            continue
        score = pred.get("score")
        if not _is_real(score):
            problems.add(f"{_at(where)}: score {_short(score)} is missing or not a finite number")
            continue
        hw = sizes.get(pid)
        seg = box = None
        has_seg, has_box = "segmentation" in pred, "bbox" in pred
        if iou_type == "segm" and not has_seg:
            problems.add(f"{_at(where)}: no 'segmentation' (needed for iou_type 'segm')")
        if iou_type == "bbox" and not has_box:
            problems.add(f"{_at(where)}: no 'bbox' (needed for iou_type 'bbox')")
        if iou_type is None and not (has_seg or has_box):
            problems.add(f"{_at(where)}: neither 'segmentation' nor 'bbox'")
        if has_seg and iou_type != "bbox":
            seg = _segmentation(pred["segmentation"], hw, where, problems, rles)
        if has_box and iou_type != "segm":
            box = _box(pred["bbox"], where, problems, normalised=iou_type == "bbox")
        if score >= gate:
            n_kept += 1
            kept.setdefault(pid, []).append(seg if iou_type == "segm" else box)
    rles.run(problems)
    problems.raise_if_any()
    return PredictionIndex(kept, len(preds), n_kept)


def load_predictions(path_or_list: str | PathLike | list, gt: Any = None) -> list[dict]:
    """Read (if a path) and validate COCO-results predictions; return them as a list of dicts.
    With `gt` (a GT dict or path, or a list of them) the pair ids and mask sizes are checked too.
    Raises MetricsInputError naming each bad field, pair id and value."""
    if isinstance(path_or_list, list):
        preds, name = path_or_list, "predictions"
    else:
        name = f"predictions file {str(path_or_list)!r}"
        preds = _read_json(path_or_list, "predictions")
    gts = None
    if gt is not None:
        docs = gt if isinstance(gt, list) else [gt]
        gts = [index_gt(d if isinstance(d, dict) else _read_json(d, "GT"), f"GT {k}", None)
               for k, d in enumerate(docs)]
    index_predictions(preds, name, gts, None)
    return preds


def as_gt_document(source: Any, k: int) -> tuple[Any, str]:
    """A GT given as a dict or a path -> (document, name used in messages)."""
    if isinstance(source, dict):
        return source, f"GT document {k}"
    if isinstance(source, (str, PathLike)):
        return _read_json(source, "GT"), f"GT file {str(source)!r}"
    raise MetricsInputError(f"GT {k}: expected a dict or a path, got {type(source).__name__}")


def as_box_array(boxes: list) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
