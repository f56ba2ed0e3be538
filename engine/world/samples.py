"""The world as the engine sees it: labelled `Sample`s, and a ground-truth oracle for annotators.

`generate_samples(n, seed, ...)` yields one `storage.records.Sample` per image: the PNG bytes and
its pairs — every positive phrase of the `standard` set (see `engine.world.phrases`) with the exact
instance masks, then `negatives_per_image` negatives (half hard negatives by default). All pairs
are exhaustive (`is_instance_exhaustive` and `is_pixel_exhaustive` true): every separable instance
has its own mask and an unseparable cluster has one crowd mask (`iscrowd`), which evaluation treats
the COCO way. Lineage and instance source are "gt".

`WorldOracle` answers "which instances does this phrase denote on this media item" for any media id
the world produced, regenerating (and caching) the scene from the id alone — this is how simulated
annotators see the truth.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.world.phrases import Concept, PhraseParseError, Semantics, semantics
from engine.world.scene import Scene, SceneObject, parse_media_key, render_scene, streams
from storage.masks import mask_to_instance
from storage.records import Instance, Lineage, Pair, Sample

PNG_COMPRESS_LEVEL = 1  # fast; PNG is lossless whatever the level


def encode_png(image: np.ndarray) -> bytes:
    """Deterministic PNG bytes of an (H, W, 3) uint8 image (no timestamps or metadata)."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def scene_instances(scene: Scene, source: str = "gt") -> dict[int, Instance]:
    """Each object's visible mask as an Instance (COCO RLE), by object id."""
    return {o.id: mask_to_instance(scene.mask(o.id), source=source, iscrowd=o.iscrowd) for o in scene.objects}


def scene_pairs(scene: Scene, negatives_per_image: int = 16, *, mode: str = "standard",
                max_positives: int | None = None, hard_fraction: float = 0.5,
                sem: Semantics | None = None) -> list[Pair]:
    """The GT pairs of a scene: positives (sorted by phrase), then negatives. Deterministic."""
    sem = sem or semantics()
    phrase_rng = streams(scene.seed, scene.index, scene.domain)[3]
    positives = sem.positive_concepts(scene.objects, mode=mode)
    if max_positives is not None and len(positives) > max_positives:
        keep = np.sort(phrase_rng.choice(len(positives), size=max_positives, replace=False))
        positives = [positives[i] for i in keep]
    instances = scene_instances(scene)
    lineage = Lineage(source="gt")
    pairs = []
    for concept in positives:
        matched = sem.select(concept, scene.objects)
        pairs.append(Pair(media_id=scene.key, phrase=sem.text(concept), label="positive",
                          instances=[instances[o.id] for o in matched], lineage=lineage))
    for concept, _hard in sem.negative_concepts(scene.objects, scene.domain, negatives_per_image,
                                                phrase_rng, hard_fraction):
        pairs.append(Pair(media_id=scene.key, phrase=sem.text(concept), label="negative", lineage=lineage))
    return pairs


def scene_sample(scene: Scene, negatives_per_image: int = 16, **kwargs) -> Sample:
    size = scene.size
    return Sample(key=scene.key, image=encode_png(scene.image), image_ext="png", width=size, height=size,
                  pairs=scene_pairs(scene, negatives_per_image, **kwargs))


def generate_scenes(n: int, seed: int, domain: str = "base", image_size: int = 224,
                    start: int = 0) -> Iterator[Scene]:
    """Scenes start .. start+n-1 of the world with this seed (image i never depends on n)."""
    if n < 0:
        raise ValueError(f"number of images must be non-negative, got {n!r}")
    for index in range(start, start + n):
        yield render_scene(seed, index, domain, image_size)


def generate_samples(n: int, seed: int, domain: str = "base", image_size: int = 224,
                     negatives_per_image: int = 16, *, start: int = 0, mode: str = "standard",
                     max_positives: int | None = None, hard_fraction: float = 0.5) -> Iterator[Sample]:
    """n labelled samples of the world: PNG image, positive pairs, negatives (hard ones first)."""
    if negatives_per_image < 0:
        raise ValueError(f"negatives_per_image must be non-negative, got {negatives_per_image!r}")
    for scene in generate_scenes(n, seed, domain, image_size, start):
        yield scene_sample(scene, negatives_per_image, mode=mode, max_positives=max_positives,
                           hard_fraction=hard_fraction)


@dataclass(frozen=True)
class GTInstance:
    """One ground-truth instance of a pair: its exact mask and attributes."""

    object_id: int
    mask: np.ndarray  # bool (H, W)
    iscrowd: bool
    area: int
    attrs: dict


class WorldOracle:
    """Ground truth of any (world media id, phrase) pair, regenerated from the id (LRU-cached)."""

    def __init__(self, cache_size: int = 128, sem: Semantics | None = None):
        self.sem = sem or semantics()
        self._cache: OrderedDict[str, Scene] = OrderedDict()
        self._cache_size = cache_size

    def scene(self, media_id: str) -> Scene:
        scene = self._cache.get(media_id)
        if scene is None:
            domain, size, seed, index = parse_media_key(media_id)
            scene = render_scene(seed, index, domain, size)
            self._cache[media_id] = scene
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(media_id)
        return scene

    def parse(self, phrase: str) -> Concept:
        return self.sem.parse(phrase)

    def groundable(self, phrase: str) -> bool:
        try:
            self.sem.parse(phrase)
        except PhraseParseError:
            return False
        return True

    def objects(self, media_id: str, phrase: str) -> list[SceneObject]:
        """Objects the phrase denotes; PhraseParseError when the phrase is outside the grammar."""
        return self.sem.select(phrase, self.scene(media_id).objects)

    def instances(self, media_id: str, phrase: str) -> list[GTInstance]:
        scene = self.scene(media_id)
        return [GTInstance(o.id, scene.mask(o.id), o.iscrowd, o.area, o.attrs)
                for o in self.objects(media_id, phrase)]

    def image_size(self, media_id: str) -> tuple[int, int]:
        size = parse_media_key(media_id)[1]
        return size, size


def gold_document(n: int, seed: int, domain: str = "base", negatives_per_image: int = 16,
                  image_size: int = 224) -> tuple[dict, dict]:
    """An in-memory SA-Co gold document of n world images (every positive pair, K negatives each) and
    its images as {file_name: PNG bytes}, for `model.gold_eval.evaluate_gold`."""
    from storage.saco import ImageMeta, to_saco

    pairs, metas, images = [], {}, {}
    for s in generate_samples(n, seed, domain, image_size, negatives_per_image):
        name = f"images/{s.key}.png"
        metas[s.key] = ImageMeta(file_name=name, height=s.height, width=s.width)
        images[name] = s.image
        pairs.extend(s.pairs)
    return to_saco(pairs, metas), images
