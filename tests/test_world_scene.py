"""Scene generator: determinism, exact and disjoint masks, occlusion, crowds, crowded scenes, domains."""

import numpy as np
import pytest
from scipy import ndimage

from engine.world.scene import (
    MIN_VISIBLE_FRACTION,
    ObjectSpec,
    Part,
    parse_media_key,
    render_scene,
    visible_objects,
)
from engine.world.shapes import SHAPES, rasterise
from engine.world.textures import second_tone
from engine.world.vocab import COLOURS_RGB, SIZE_RANGES

SCENES = [render_scene(11, i) for i in range(40)]


def test_deterministic_and_independent_of_count():
    a, b = render_scene(11, 7), SCENES[7]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert [o.attrs for o in a.objects] == [o.attrs for o in b.objects]
    assert not np.array_equal(render_scene(12, 7).image, a.image)
    assert not np.array_equal(SCENES[8].image, a.image)
    assert parse_media_key(a.key) == ("base", 224, 11, 7)


def test_image_size_is_configurable_and_layout_scales():
    small, big = render_scene(11, 3, image_size=96), render_scene(11, 3, image_size=320)
    assert small.image.shape == (96, 96, 3) and big.labels.shape == (320, 320)
    assert [o.shape for o in big.objects] == [o.shape for o in SCENES[3].objects]
    with pytest.raises(ValueError, match="image_size"):
        render_scene(0, 0, image_size=8)
    with pytest.raises(ValueError, match="seed"):
        render_scene(-1, 0)


def test_masks_are_exact_pixels_of_their_object():
    """Every labelled pixel has its object's colour (or its pattern's darker tone), up to noise."""
    for scene in SCENES[:15]:
        img = scene.image.astype(np.float32)
        for o in scene.objects:
            base = np.asarray(COLOURS_RGB[o.colour], np.float32)
            pix = img[scene.mask(o.id)]
            d = np.minimum(np.abs(pix - base).max(1), np.abs(pix - second_tone(base)).max(1))
            assert np.quantile(d, 0.99) < 30, (scene.key, o)
            assert o.area == int(scene.mask(o.id).sum()) and o.area > 0
            x, y, w, h = o.bbox
            ys, xs = np.nonzero(scene.mask(o.id))
            assert (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (x, y, w, h)


def test_occlusion_visible_parts_disjoint_and_not_tiny():
    masks_seen = 0
    for scene in SCENES:
        stack = np.stack([scene.mask(o.id) for o in scene.objects])
        assert stack.sum(0).max() <= 1  # disjoint
        masks_seen += len(stack)
        assert all(o.area >= 30 for o in scene.objects)
    assert masks_seen > 200


def test_occluded_object_mask_is_its_visible_part():
    bottom = ObjectSpec("square", "red", "solid", "large", (Part(0.5, 0.5, 0.15, 0.0),))
    top = ObjectSpec("circle", "blue", "solid", "large", (Part(0.6, 0.5, 0.12, 0.0),))
    hidden = ObjectSpec("circle", "green", "solid", "small", (Part(0.6, 0.5, 0.04, 0.0),))
    drawn = visible_objects([bottom, hidden, top], 224)
    assert [d.spec.colour for d in drawn] == ["red", "blue"]  # the fully covered one is not drawn
    full_square = rasterise("square", 112, 112, 0.15 * 224, 0.0, 224, 224)
    full_circle = rasterise("circle", 0.6 * 224, 112, 0.12 * 224, 0.0, 224, 224)
    expected = np.zeros((224, 224), bool)
    expected[full_square.slices] = full_square.mask
    cover = np.zeros((224, 224), bool)
    cover[full_circle.slices] = full_circle.mask
    expected &= ~cover
    from engine.world.scene import describe, paint

    img = np.zeros((3, 224, 224), np.float32)
    labels = np.zeros((224, 224), np.int16)
    paint(img, labels, drawn)
    assert np.array_equal(labels == 1, expected)
    assert describe(labels, drawn)[0].area == expected.sum() > MIN_VISIBLE_FRACTION * full_square.area


def test_crowd_clusters_are_one_connected_crowd_mask():
    crowds = [(s, o) for s in SCENES for o in s.objects if o.iscrowd]
    assert len(crowds) >= 5
    for scene, o in crowds:
        assert o.members >= 5 and o.size == "small"
        lab, n = ndimage.label(scene.mask(o.id))
        sizes = np.bincount(lab.ravel())[1:]
        assert sizes.max() >= 0.4 * sizes.sum()  # touching members (an occluder may cut a piece off)
    assert np.mean([np.bincount(ndimage.label(s.mask(o.id))[0].ravel())[1:].max() >= 0.9 * o.area
                    for s, o in crowds]) > 0.8
    assert all(o.members == 1 for s in SCENES for o in s.objects if not o.iscrowd)


def test_crowded_scenes_have_20_plus_small_objects():
    crowded = [s for s in SCENES if s.layout == "crowded"]
    assert crowded
    for s in crowded:
        assert sum(o.size == "small" for o in s.objects) >= 20


def test_sizes_are_distinguishable():
    for s in SCENES:
        for o in s.objects:
            if not o.iscrowd:
                r = max(o.bbox[2], o.bbox[3]) / 2 / 224
                if o.size == "small":
                    assert r <= SIZE_RANGES["small"][1] + 0.01
    assert SIZE_RANGES["small"][1] < SIZE_RANGES["large"][0]


def test_night_domain_looks_different_and_uses_its_vocabulary():
    night = [render_scene(11, i, "night") for i in range(20)]
    base_bg = np.mean([s.image[s.labels == 0].mean() for s in SCENES[:20]])
    night_bg = np.mean([s.image[s.labels == 0].mean() for s in night])
    assert night_bg < 60 < 150 < base_bg
    night_shapes = {o.shape for s in night for o in s.objects}
    night_patterns = {o.pattern for s in night for o in s.objects}
    assert "square" not in night_shapes and night_shapes & {"crescent", "diamond"}
    assert night_patterns & {"wavy", "zigzag"} and not night_patterns & {"dotted", "checkered"}
    assert not {o.shape for s in SCENES for o in s.objects} & {"crescent", "diamond"}
    with pytest.raises(ValueError, match="unknown world domain 'moon'"):
        render_scene(0, 0, "moon")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rasterised_area_matches_geometry(shape):
    r = 40.0
    ras = rasterise(shape, 100, 100, r, 0.3, 200, 200)
    expected = {  # exact areas as fractions of r^2
        "circle": np.pi, "ring": np.pi * (1 - 0.55**2), "square": 2.0, "triangle": 3 * np.sqrt(3) / 4,
        "hexagon": 3 * np.sqrt(3) / 2, "diamond": 2 * 0.62, "cross": 2 * (0.6 * 1.9) - 0.6**2,
        "star": 10 * 0.5 * 0.45 * np.sin(np.pi / 5),
    }
    if shape in expected:
        assert ras.area == pytest.approx(expected[shape] * r * r, rel=0.03)
    else:
        assert 0.5 * r * r < ras.area < np.pi * r * r
