"""The shapes world: procedurally generated images and videos with exact ground truth.

Public API:
- `render_scene(seed, index, domain, image_size)` -> `Scene` (pixels, label map, instance attributes)
- `generate_samples(n, seed, domain, image_size, negatives_per_image)` -> `storage.records.Sample`s
- `WorldOracle`: ground-truth masks of any (world media id, phrase) pair, for simulated annotators
- `semantics()` -> `Semantics`: parse noun phrases into predicates over instances, enumerate
  positive phrases and hard negatives
- `generate_video(seed, index, domain, n_frames, image_size)` -> `Video` (per-frame masks, track ids)
- `domains()`, `vocabulary(domain)`: the domains and what each draws from (from the ontology)
"""

from engine.world.phrases import Concept, PhraseParseError, Semantics, semantics
from engine.world.samples import GTInstance, WorldOracle, generate_samples, generate_scenes, scene_pairs
from engine.world.scene import Scene, SceneObject, media_key, parse_media_key, render_scene
from engine.world.video import Video, generate_video
from engine.world.vocab import domains, vocabulary

__all__ = [
    "Concept", "GTInstance", "PhraseParseError", "Scene", "SceneObject", "Semantics", "Video", "WorldOracle",
    "domains", "generate_samples", "generate_scenes", "generate_video", "media_key", "parse_media_key",
    "render_scene", "scene_pairs", "semantics", "vocabulary",
]
