"""Training data: WebDataset shards of `Sample`s -> batches of image-phrase pairs for `Sam3Model`.

Per image we sample pairs: positives, plain negatives and *hard* negatives (a negative whose phrase
shares a content word with one of the image's positive phrases, or that is marked hard in its
reason or lineage), with configurable counts; dropped pairs are skipped. A batch holds a few images
and all their sampled pairs: `pixel_values` (I, 3, S, S) once per image, `image_index` (B,) mapping
each pair row to its image (the trainer computes vision features once per image), the tokenised
phrases and one `PairTarget` per row (boxes xyxy normalised, binary masks).

Shards are read with `storage.shards` (local paths or s3:// URIs).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from model.losses import PairTarget
from storage.records import Pair, Sample

_STOPWORDS = {"a", "an", "the", "of", "and", "or", "with", "in", "on", "at", "to", "for", "by", "its"}


@dataclass
class SamplingConfig:
    """How many pairs of each kind to take per image (at most; fewer when the image has fewer)."""

    positives_per_image: int = 4
    negatives_per_image: int = 2
    hard_negatives_per_image: int = 2
    images_per_batch: int = 2
    max_instances_per_pair: int = 64
    mask_size: int = 256  # GT masks are resized to at most this side
    shuffle_buffer: int = 64
    seed: int = 0
    # curriculum: the first `short_phrase_batches` batches use only phrases of at most
    # `short_phrase_words` words ("red shape", "circle"), which a model from scratch grounds much
    # sooner than "small striped red triangle"; then every phrase
    short_phrase_batches: int = 0
    short_phrase_words: int = 2
    # crowd regions ("iscrowd") out of the targets, as SAM 3 trains and as cgF1 scores (it ignores
    # crowd GT, so a pair whose only instances are crowds is a negative)
    drop_crowds: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PairBatch:
    """One training batch: I images, B pairs."""

    pixel_values: Tensor  # (I, 3, S, S)
    image_index: Tensor  # (B,) long, row -> image
    input_ids: Tensor  # (B, L)
    attention_mask: Tensor  # (B, L)
    targets: list[PairTarget]
    pair_ids: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # positive | negative | hard_negative

    def to(self, device) -> PairBatch:
        return PairBatch(
            self.pixel_values.to(device), self.image_index.to(device), self.input_ids.to(device),
            self.attention_mask.to(device),
            [PairTarget(t.boxes.to(device), t.masks.to(device), t.extra) for t in self.targets],
            self.pair_ids, self.kinds,
        )

    def __len__(self) -> int:
        return len(self.targets)


def content_words(phrase: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", phrase.lower()) if w not in _STOPWORDS}


def is_hard_negative(pair: Pair, positive_phrases: Iterable[str]) -> bool:
    """A negative that is marked hard, or that shares a content word with a positive phrase."""
    if pair.label != "negative":
        return False
    marks = " ".join(str(x) for x in (pair.reason, pair.lineage.source, pair.lineage.campaign) if x)
    if "hard" in marks.lower():
        return True
    words = content_words(pair.phrase)
    return any(words & content_words(p) for p in positive_phrases)


def phrase_words(phrase: str) -> int:
    return sum(1 for w in phrase.split() if w not in ("a", "an", "the"))


def sample_pairs(sample: Sample, cfg: SamplingConfig, rng: random.Random,
                 max_words: int | None = None) -> list[tuple[Pair, str]]:
    """Pick (pair, kind) from one image: positives, hard negatives, negatives; dropped skipped.

    `max_words` keeps only phrases of at most that many words (the curriculum's first stage).
    """
    pairs = [p for p in sample.pairs if max_words is None or phrase_words(p.phrase) <= max_words]
    positives = [p for p in pairs if p.label == "positive"]
    phrases = [p.phrase for p in positives]
    negatives = [p for p in pairs if p.label == "negative"]
    hard = [p for p in negatives if is_hard_negative(p, phrases)]
    easy = [p for p in negatives if not is_hard_negative(p, phrases)]
    chosen = [(p, "positive") for p in rng.sample(positives, min(len(positives), cfg.positives_per_image))]
    chosen += [(p, "hard_negative") for p in rng.sample(hard, min(len(hard), cfg.hard_negatives_per_image))]
    n_easy = cfg.negatives_per_image + max(0, cfg.hard_negatives_per_image - len(hard))
    chosen += [(p, "negative") for p in rng.sample(easy, min(len(easy), n_easy))]
    return chosen


def instance_masks(instances) -> np.ndarray:
    """Binary (n, h, w) uint8 masks of Instances' COCO RLEs (one pycocotools call)."""
    import warnings

    from pycocotools import mask as mask_utils

    rles = []
    for inst in instances:
        counts = inst.rle["counts"]
        rles.append({"size": list(inst.rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation, harmless
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.ascontiguousarray(mask_utils.decode(rles).transpose(2, 0, 1))


def pair_target(pair: Pair, width: int, height: int, mask_size: int, max_instances: int,
                drop_crowds: bool = False) -> PairTarget:
    """Boxes (xyxy normalised by the image size) and masks (resized to <= mask_size) of a pair.

    With `drop_crowds`, crowd instances are left out (a crowd-only positive becomes a negative).
    """
    insts = pair.instances if pair.label == "positive" else []
    if drop_crowds:
        insts = [i for i in insts if not i.iscrowd]
    insts = insts[:max_instances]
    scale = min(1.0, mask_size / max(width, height))
    mh, mw = max(1, round(height * scale)), max(1, round(width * scale))
    if not insts:
        return PairTarget(torch.zeros(0, 4), torch.zeros(0, mh, mw))
    boxes = torch.tensor(
        [[x / width, y / height, (x + w) / width, (y + h) / height] for x, y, w, h in (i.bbox for i in insts)],
        dtype=torch.float32,
    ).clamp(0, 1)
    masks = torch.from_numpy(instance_masks(insts)).float()
    if (mh, mw) != (height, width):
        masks = torch.nn.functional.adaptive_avg_pool2d(masks[None], (mh, mw))[0]
        masks = (masks >= 0.5).float()
    return PairTarget(boxes, masks)


def collate(
    items: list[tuple[Sample, list[tuple[Pair, str]]]], tokenizer, image_size: int, max_len: int,
    cfg: SamplingConfig,
) -> PairBatch:
    """Build a PairBatch from (sample, sampled pairs) items."""
    from model.preprocess import preprocess_image, tokenize

    pixels, index, phrases, targets, ids, kinds = [], [], [], [], [], []
    for i, (sample, pairs) in enumerate(items):
        pixels.append(preprocess_image(sample.image, image_size, image_id=sample.key))
        for pair, kind in pairs:
            index.append(i)
            phrases.append(pair.phrase)
            targets.append(pair_target(pair, sample.width, sample.height, cfg.mask_size, cfg.max_instances_per_pair,
                                       cfg.drop_crowds))
            ids.append(pair.pair_id)
            kinds.append(kind)
    input_ids, attention_mask = tokenize(tokenizer, phrases, max_len)
    return PairBatch(
        pixel_values=torch.stack(pixels),
        image_index=torch.tensor(index, dtype=torch.long),
        input_ids=input_ids,
        attention_mask=attention_mask,
        targets=targets, pair_ids=ids, kinds=kinds,
    )


def iter_samples(shards: list[str] | str, *, loop: bool = False, rank: int = 0, world_size: int = 1,
                 seed: int = 0, skip_bad: bool = True) -> Iterator[Sample]:
    """Samples from shards (see `expand_shards`), the shard list split by rank, looped if asked.

    Bad samples are skipped (storage's reader quarantines them) unless `skip_bad` is False.
    """
    from storage.shards import read_shard

    urls = expand_shards(shards)
    if not urls:
        raise ValueError(f"no shards found at {shards!r}")
    mine = urls[rank::world_size] or urls  # more workers than shards: everyone reads all
    epoch = 0
    while True:
        order = list(mine)
        random.Random(seed + epoch).shuffle(order)
        for url in order:
            yield from read_shard(url, skip_bad=skip_bad)
        epoch += 1
        if not loop:
            return


def expand_shards(shards: list[str] | str, split: str = "train") -> list[str]:
    """Shard URIs from a list, a brace pattern (`.../train-{000000..000003}.tar`), or a folder /
    prefix URI holding `<split>-NNNNNN.tar` shards."""
    if isinstance(shards, (list, tuple)):
        return [u for s in shards for u in expand_shards(s, split)]
    import braceexpand

    urls = list(braceexpand.braceexpand(str(shards)))
    if len(urls) == 1 and not urls[0].endswith(".tar"):
        from storage.shards import list_shards

        return list_shards(urls[0], split)
    return urls


def iter_batches(
    samples: Iterable[Sample], tokenizer, image_size: int, max_len: int, cfg: SamplingConfig,
    skip: int = 0,
) -> Iterator[PairBatch]:
    """Shuffle (buffered) samples, sample pairs per image, group `images_per_batch` images.

    Deterministic for a seed; the first `skip` batches are drawn but not decoded (resume).
    """
    count = 0
    for group in _iter_groups(samples, cfg):
        count += 1
        if count > skip:
            yield collate(group, tokenizer, image_size, max_len, cfg)


def _iter_groups(samples: Iterable[Sample], cfg: SamplingConfig) -> Iterator[list[tuple[Sample, list]]]:
    rng = random.Random(cfg.seed)
    buffer: list[Sample] = []
    pending: list[tuple[Sample, list]] = []
    emitted = 0

    def take(sample: Sample) -> list | None:
        nonlocal pending, emitted
        short = emitted < cfg.short_phrase_batches
        pairs = sample_pairs(sample, cfg, rng, cfg.short_phrase_words if short else None)
        if pairs:
            pending.append((sample, pairs))
        if len(pending) == cfg.images_per_batch:
            group, pending = pending, []
            emitted += 1
            return group
        return None

    for sample in samples:
        buffer.append(sample)
        if len(buffer) < cfg.shuffle_buffer:
            continue
        group = take(buffer.pop(rng.randrange(len(buffer))))
        if group:
            yield group
    rng.shuffle(buffer)
    for sample in buffer:
        group = take(sample)
        if group:
            yield group
    if pending:
        yield pending
