"""The shapes world: procedurally generated images and videos with exact ground truth.

Public API (see the modules for details):
- `render_scene(seed, index, domain, image_size)` -> `Scene` (pixels, label map, instance attributes)
- `generate_samples(n, seed, domain, image_size, negatives_per_image)` -> `storage.records.Sample`s
- `WorldOracle`: ground-truth masks of any (media id, phrase) pair, for simulated annotators
- `Semantics` / `semantics()`: parse noun phrases into predicates over instances
- `generate_video(seed, index, domain, ...)` -> `Video` with per-frame masks and stable track ids
"""
