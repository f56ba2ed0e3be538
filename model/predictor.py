"""Batched SAM 3 inference: many images × many noun phrases, vision features computed once per image.

``Predictor(loaded).predict(items)`` takes items ``(image_id, image, phrases[, exemplars])`` (or
``PredictItem``); a phrase may be a ``Prompt`` carrying exemplar boxes (pixel ``[x, y, w, h]`` at the
original size, labels 1 positive / 0 negative). Per chunk of ``image_batch_size`` images it runs the
vision encoder once (``get_vision_features``), the text encoder once per distinct phrase, then the
detector heads over the chunk's (image, phrase) pairs in batches of ``batch_size`` with the vision
features indexed per pair (``vision_embeds=``). Pairs with exemplar boxes are batched apart from
text-only pairs, so every pair gets exactly the computation of a one-pair forward.

Per image it returns an ``ImageResult`` (or one with ``error`` set when the image cannot be decoded:
the other images go on). Per pair, a ``PairPrediction``: ``presence`` (sigmoid of the presence
logit), ``scores`` (every query's sigmoid(logit) · presence, cheap for verifiers; both logits first
offset by the model's saved score calibration, if any: ``model.calibration``), ``instances``
(score ≥ ``score_threshold``, best first: COCO RLE mask at the original size, pixel xywh box, area,
``semantic_agreement``) and ``semantic`` (see ``model.postprocess.semantic_summary``).

On CUDA, post-processing of batch k runs on a side stream while batch k+1 runs, the next chunk's
images are decoded in a background thread, and ``compile=True`` compiles the vision encoder (chunks
are padded to a fixed batch so it compiles once).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from model.postprocess import (
    SUMMARY_KEYS,
    masks_to_rle,
    nms_per_pair,
    semantic_summary,
    upsample_masks,
    xyxy_to_pixel_xywh,
)
from model.preprocess import (
    ImageDecodeError,
    boxes_xywh_to_cxcywh,
    load_image,
    resize_normalise,
    tokenize,
)

PAD_BOX_LABEL = -10  # Sam3Model's label for padding boxes


@dataclass
class Prompt:
    """A noun phrase, optionally with exemplar boxes (pixel xywh at original size) and labels."""

    phrase: str
    boxes: Sequence[Sequence[float]] = ()
    labels: Sequence[int] = ()

    def __post_init__(self):
        if not isinstance(self.phrase, str):
            raise TypeError(f"phrase must be text, got {self.phrase!r:.60}")
        if len(self.labels) and len(self.labels) != len(self.boxes):
            raise ValueError(f"phrase {self.phrase!r}: {len(self.boxes)} boxes but {len(self.labels)} labels")
        if any(len(b) != 4 for b in self.boxes):
            raise ValueError(f"phrase {self.phrase!r}: exemplar boxes must be [x, y, w, h]")
        if any(lab not in (0, 1) for lab in self.labels):
            raise ValueError(f"phrase {self.phrase!r}: box labels must be 1 (positive) or 0 (negative)")


@dataclass
class PredictItem:
    image_id: Any
    image: Any  # bytes, path, PIL image, numpy array
    prompts: list[Prompt]


@dataclass
class Instance:
    score: float
    query: int
    bbox: list[float]  # pixel [x, y, w, h] at original size
    area: int
    semantic_agreement: float
    rle: dict | None = None  # COCO compressed RLE at original size (None when encode_rle=False)


@dataclass
class PairPrediction:
    image_id: Any
    phrase: str
    prompt_index: int
    presence: float
    scores: list[float]
    instances: list[Instance]
    semantic: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageResult:
    image_id: Any
    width: int = 0
    height: int = 0
    pairs: list[PairPrediction] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Chunk:
    """One chunk of images in flight: results, vision slots, features and planned heads batches."""

    items: list[PredictItem]
    results: list[ImageResult]
    slots: list[int] = field(default_factory=list)  # item index of each vision row
    vision: Any = None
    text: dict | None = None
    batches: list = field(default_factory=list)
    remaining: int = 0

    def finished(self) -> list[ImageResult]:
        for r in self.results:
            r.pairs.sort(key=lambda p: p.prompt_index)
        return self.results


def _as_prompt(p: Any, exemplar: Any = None) -> Prompt:
    """A phrase (str / Prompt / (phrase, boxes[, labels])) plus an optional (boxes[, labels]) default."""
    if isinstance(p, Prompt):
        return p
    if isinstance(p, (tuple, list)) and p and isinstance(p[0], str):
        p, exemplar = p[0], tuple(p[1:])
    if not isinstance(p, str):
        raise TypeError(f"a phrase must be a str, Prompt or (phrase, boxes[, labels]) tuple, got {p!r:.60}")
    boxes, labels = (list(exemplar) + [(), ()])[:2] if exemplar else ((), ())
    return Prompt(p, list(boxes), list(labels))


def as_item(item: Any) -> PredictItem:
    """``PredictItem`` / ``(image_id, image, phrases[, exemplars])`` / dict → ``PredictItem``.

    ``exemplars`` is ``(boxes, labels)`` for every phrase, or a list aligned with the phrases.
    """
    if isinstance(item, PredictItem):
        return item
    if isinstance(item, dict):
        item = (item["image_id"], item["image"], item.get("prompts", item.get("phrases")), item.get("exemplars"))
    image_id, image, phrases, *rest = item
    exemplars = rest[0] if rest else None
    if isinstance(phrases, (str, Prompt)):
        phrases = [phrases]
    if isinstance(exemplars, list) and len(exemplars) == len(phrases):
        prompts = [_as_prompt(p, e) for p, e in zip(phrases, exemplars)]
    else:
        prompts = [_as_prompt(p, exemplars) for p in phrases]
    return PredictItem(image_id, image, prompts)


def _decode(items: list[PredictItem]) -> list[np.ndarray | ImageDecodeError]:
    out = []
    for it in items:
        try:
            out.append(load_image(it.image, it.image_id))
        except ImageDecodeError as err:
            out.append(err)
    return out


class Predictor:
    """Batched, vision-reusing SAM 3 inference over (image, phrase) pairs (see module docstring)."""

    def __init__(self, loaded: Any, batch_size: int = 16, image_batch_size: int | None = None,
                 dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                 compile: bool = False, score_threshold: float = 0.5, mask_threshold: float = 0.5,
                 encode_rle: bool = True, prefetch: bool = True, nms_iou: float | None = None):
        self.loaded = loaded
        self.model = loaded.model.eval()
        if device is not None or dtype is not None:
            self.model.to(device=device, dtype=dtype)
        param = next(self.model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.batch_size = max(1, int(batch_size))
        self.image_batch_size = max(1, int(image_batch_size or batch_size))
        self.score_threshold, self.mask_threshold = score_threshold, mask_threshold
        self.encode_rle, self.prefetch = encode_rle, prefetch
        # box NMS per pair among kept instances (models trained with one-to-many matching predict
        # each instance several times); None: the model's own setting (`LoadedModel.extra`), else off
        self.nms_iou = nms_iou if nms_iou is not None else loaded.extra.get("nms_iou")
        # score calibration saved with the model (`model.calibration`): logit offsets added to the
        # query and presence logits before the sigmoids (0, 0 for models without one)
        self.query_bias = float(loaded.extra.get("query_logit_bias", 0.0))
        self.presence_bias = float(loaded.extra.get("presence_logit_bias", 0.0))
        self.compiled = compile
        if compile and not getattr(self.model.vision_encoder, "_compiled_call_impl", None):
            self.model.vision_encoder.compile()
        self._text_embeds = "text_embeds" in inspect.signature(self.model.forward).parameters
        self._cuda = self.device.type == "cuda"
        self._post_stream = torch.cuda.Stream(self.device) if self._cuda else None

    # ---- public API -------------------------------------------------------------------------
    def predict(self, items: Iterable[Any]) -> list[ImageResult]:
        """One ``ImageResult`` per item, in input order."""
        return list(self.predict_iter(items))

    def predict_iter(self, items: Iterable[Any]) -> Iterator[ImageResult]:
        """Like ``predict`` but yields results as their chunk completes (for streaming/actor use).

        Heads batches form one pipeline across chunks: batch k+1 (or the next chunk's vision pass)
        is queued on the device before batch k is post-processed.
        """
        done: deque[_Chunk] = deque()
        prev = None
        for chunk in self._decoded_chunks(as_item(i) for i in items):
            done.append(chunk)
            for batch in chunk.batches:
                out = self._forward(batch, chunk)
                event = None
                if self._cuda:
                    event = torch.cuda.Event()
                    event.record()
                if prev is not None:
                    self._finish(*prev)
                prev = (batch, out, event, chunk)
                while done and done[0].remaining == 0:
                    yield from done.popleft().finished()
        if prev is not None:
            self._finish(*prev)
        while done:
            yield from done.popleft().finished()

    # ---- internals --------------------------------------------------------------------------
    def _decoded_chunks(self, items: Iterator[PredictItem]) -> Iterator[_Chunk]:
        """Chunks of ``image_batch_size`` items, decoded one chunk ahead in a thread, prepared."""
        def groups():
            group: list[PredictItem] = []
            for it in items:
                group.append(it)
                if len(group) == self.image_batch_size:
                    yield group
                    group = []
            if group:
                yield group

        pool = ThreadPoolExecutor(1) if self.prefetch else None
        try:
            it = groups()
            nxt = next(it, None)
            pending = pool.submit(_decode, nxt) if pool and nxt is not None else None
            while nxt is not None:
                group = nxt
                decoded = pending.result() if pool else _decode(group)
                nxt = next(it, None)
                if pool and nxt is not None:
                    pending = pool.submit(_decode, nxt)
                yield self._prepare(group, decoded)
        finally:
            if pool:
                pool.shutdown(wait=True)

    @torch.inference_mode()
    def _prepare(self, group: list[PredictItem], decoded: list) -> _Chunk:
        """Queue the vision pass and text encodings of a chunk; plan its heads batches."""
        chunk = _Chunk(group, [ImageResult(it.image_id) for it in group])
        pixels = []
        lm = self.loaded
        for i, rgb in enumerate(decoded):
            if isinstance(rgb, ImageDecodeError):
                chunk.results[i].error = str(rgb)
                continue
            chunk.results[i].height, chunk.results[i].width = rgb.shape[:2]
            if not group[i].prompts:
                continue
            chunk.slots.append(i)
            if self._cuda:  # pinned: the copy does not wait for queued device work
                rgb = torch.from_numpy(np.ascontiguousarray(rgb)).pin_memory()
            pixels.append(resize_normalise(rgb, lm.image_size, lm.image_mean, lm.image_std, device=self.device))
        pairs = [(s, k, p) for s, i in enumerate(chunk.slots) for k, p in enumerate(group[i].prompts)]
        if not pairs:
            return chunk
        if self.compiled and len(pixels) < self.image_batch_size:  # fixed shape: compile once
            pixels += [torch.zeros_like(pixels[0])] * (self.image_batch_size - len(pixels))
        chunk.vision = self.model.get_vision_features(pixel_values=torch.stack(pixels).to(self.dtype))
        chunk.text = self._encode_text(sorted({p.phrase for _, _, p in pairs}))
        plain = [q for q in pairs if not len(q[2].boxes)]
        boxed = [q for q in pairs if len(q[2].boxes)]
        chunk.batches = [g[j:j + self.batch_size] for g in (plain, boxed) for j in range(0, len(g), self.batch_size)]
        chunk.remaining = len(chunk.batches)
        return chunk

    def _encode_text(self, phrases: list[str]) -> dict:
        ids, mask = tokenize(self.loaded.tokenizer, phrases, self.loaded.max_text_len)
        ids, mask = ids.to(self.device), mask.to(self.device)
        feats = None
        if self._text_embeds:
            step = max(self.batch_size, 64)
            parts = [self.model.get_text_features(input_ids=ids[j:j + step], attention_mask=mask[j:j + step])
                     for j in range(0, len(phrases), step)]
            if all(hasattr(o, "pooler_output") for o in parts):  # else: an API without reusable text
                feats = torch.cat([o.pooler_output for o in parts])
        return {"index": {p: i for i, p in enumerate(phrases)}, "ids": ids, "mask": mask, "feats": feats}

    @torch.inference_mode()
    def _forward(self, batch, chunk: _Chunk):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        vision, text = chunk.vision, chunk.text

        img = torch.tensor([s for s, _, _ in batch], device=self.device)
        tix = torch.tensor([text["index"][p.phrase] for _, _, p in batch], device=self.device)
        n_vis = vision.fpn_hidden_states[0].shape[0]
        if len(batch) == n_vis and all(s == i for i, (s, _, _) in enumerate(batch)):
            ve = vision  # one pair per image, in order: no copy
        else:
            ve = type(vision)(
                fpn_hidden_states=tuple(f.index_select(0, img) for f in vision.fpn_hidden_states),
                fpn_position_encoding=tuple(f.index_select(0, img) for f in vision.fpn_position_encoding),
            )
        kwargs: dict[str, Any] = {"vision_embeds": ve, "attention_mask": text["mask"][tix]}
        if text["feats"] is not None:
            kwargs["text_embeds"] = BaseModelOutputWithPooling(pooler_output=text["feats"][tix])
        else:
            kwargs["input_ids"] = text["ids"][tix]
        if len(batch[0][2].boxes):
            kwargs.update(self._box_inputs(batch, chunk))
        return self.model(**kwargs)

    def _box_inputs(self, batch, chunk: _Chunk) -> dict:
        n = max(len(p.boxes) for _, _, p in batch)
        boxes = torch.zeros(len(batch), n, 4)
        labels = torch.full((len(batch), n), PAD_BOX_LABEL, dtype=torch.long)
        for r, (s, _, p) in enumerate(batch):
            res = chunk.results[chunk.slots[s]]
            boxes[r, : len(p.boxes)] = boxes_xywh_to_cxcywh(p.boxes, res.width, res.height)
            lab = list(p.labels) if len(p.labels) else [1] * len(p.boxes)
            labels[r, : len(p.boxes)] = torch.tensor(lab, dtype=torch.long)
        return {"input_boxes": boxes.to(self.device, self.dtype), "input_boxes_labels": labels.to(self.device)}

    @torch.inference_mode()
    def _finish(self, batch, out, event, chunk: _Chunk) -> None:
        if self._cuda:
            with torch.cuda.stream(self._post_stream):
                self._post_stream.wait_event(event)
                self._postprocess(batch, out, chunk.slots, chunk.results)
        else:
            self._postprocess(batch, out, chunk.slots, chunk.results)
        chunk.remaining -= 1

    def _postprocess(self, batch, out, slots, results) -> None:
        presence = (out.presence_logits.float() + self.presence_bias).sigmoid()[:, 0]
        scores = (out.pred_logits.float() + self.query_bias).sigmoid() * presence[:, None]
        host = torch.cat([scores, presence[:, None]], dim=1).cpu().numpy()
        scores_np, presence_np = host[:, :-1], host[:, -1]
        kb, kq = np.nonzero(scores_np >= self.score_threshold)
        if self.nms_iou and len(kb):
            boxes = out.pred_boxes[torch.from_numpy(kb).to(self.device), torch.from_numpy(kq).to(self.device)]
            keep = nms_per_pair(boxes, torch.from_numpy(scores_np[kb, kq]), kb, self.nms_iou)
            kb, kq = kb[keep], kq[keep]
        kb_t = torch.from_numpy(kb).to(self.device)
        kq_t = torch.from_numpy(kq).to(self.device)
        kept = out.pred_masks[kb_t, kq_t]
        summary, agree = semantic_summary(out.semantic_seg[:, 0], kept, kb_t)
        sizes = np.array([(results[slots[batch[b][0]]].width, results[slots[batch[b][0]]].height) for b in kb],
                         dtype=np.float32).reshape(-1, 2)
        wh = torch.from_numpy(sizes).to(self.device)
        boxes = xyxy_to_pixel_xywh(out.pred_boxes[kb_t, kq_t], wh[:, 0:1], wh[:, 1:2]).cpu().numpy()
        rles: list = [None] * len(kb)
        areas = [0] * len(kb)
        for w, h in sorted({(int(w), int(h)) for w, h in sizes}):  # one upsample per image size
            rows = np.nonzero((sizes[:, 0] == w) & (sizes[:, 1] == h))[0]
            full = upsample_masks(kept[torch.from_numpy(rows).to(self.device)], h, w, self.mask_threshold)
            if self.encode_rle:
                enc, area = masks_to_rle(full)
            else:
                enc, area = [None] * len(rows), full.sum(dim=(1, 2)).cpu().tolist()
            for r, e, a in zip(rows, enc, area):
                rles[r], areas[r] = e, int(a)
        summary_np, agree_np = summary.cpu().numpy(), agree.cpu().numpy()
        per_pair: dict[int, list[Instance]] = {}
        for r, (b, q) in enumerate(zip(kb, kq)):
            per_pair.setdefault(int(b), []).append(Instance(
                score=float(scores_np[b, q]), query=int(q), bbox=[float(v) for v in boxes[r]], area=areas[r],
                semantic_agreement=float(agree_np[r]), rle=rles[r]))
        for b, (s, k, p) in enumerate(batch):
            insts = sorted(per_pair.get(b, []), key=lambda i: -i.score)
            res = results[slots[s]]
            res.pairs.append(PairPrediction(
                image_id=res.image_id, phrase=p.phrase, prompt_index=k, presence=float(presence_np[b]),
                scores=scores_np[b].tolist(), instances=insts,
                semantic=dict(zip(SUMMARY_KEYS, (float(v) for v in summary_np[b])))))
