"""NP semantics: parsing, hierarchy closure, attribute filtering, positives and (hard) negatives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.world.phrases import Concept, PhraseParseError, semantics
from engine.world.scene import render_scene
from engine.world.vocab import vocabulary

SEM = semantics()
SCENES = [render_scene(21, i) for i in range(12)] + [render_scene(21, i, "night") for i in range(6)]

# An independent statement of the hierarchy, to check the semantics against.
PARENT = {"triangle": "polygon", "square": "polygon", "hexagon": "polygon", "diamond": "polygon",
          "circle": "round_shape", "ring": "round_shape", "crescent": "round_shape",
          "star": "shape", "cross": "shape", "polygon": "shape", "round_shape": "shape"}
NOUNS = sorted(PARENT) + ["shape"]
SURFACE = {  # node -> surface forms the grammar must accept
    "round_shape": ["round shape", "rounded shape"], "cross": ["cross", "plus sign"], "circle": ["circle", "disc"],
    "polygon": ["polygon"], "triangle": ["triangle", "triangular shape"], "ring": ["ring", "donut"],
    "large": ["large", "big"], "small": ["small", "tiny"], "dotted": ["dotted", "polka-dot"],
    "checkered": ["checkered", "chequered"], "purple": ["purple", "violet"], "red": ["red", "scarlet"],
}


def is_a(shape, noun):
    while shape != noun and shape in PARENT:
        shape = PARENT[shape]
    return shape == noun


def reference_select(concept, objects):
    return [o for o in objects if is_a(o.shape, concept.head)
            and all(getattr(concept, f) in (None, getattr(o, f)) for f in ("size", "pattern", "colour"))]


@pytest.mark.parametrize("phrase, expected", [
    ("small striped triangle", Concept("triangle", size="small", pattern="striped")),
    ("polygon", Concept("polygon")),
    ("red shape", Concept("shape", colour="red")),
    ("A big scarlet plain disc", Concept("circle", size="large", pattern="solid", colour="red")),
    ("the round shapes", Concept("round_shape")),
    ("crosses", Concept("cross")),
    ("violet polka-dot plus sign", Concept("cross", pattern="dotted", colour="purple")),
    ("  Large   CHECKERED  hexagon ", Concept("hexagon", size="large", pattern="checkered")),
])
def test_parse(phrase, expected):
    assert SEM.parse(phrase) == expected


@pytest.mark.parametrize("phrase, message", [
    ("purple elephant", "unknown word 'elephant'"),
    ("triangle red", "must come last"),
    ("red", "has no noun"),
    ("red blue circle", "two colour values"),
    ("colour circle", "attribute category"),
    ("the", "no words"),
    ("", "empty"),
])
def test_unparseable_phrases_name_the_phrase(phrase, message):
    with pytest.raises(PhraseParseError, match=message) as err:
        SEM.parse(phrase)
    assert repr(phrase) in str(err.value) or phrase == ""


@settings(max_examples=150, deadline=None)
@given(noun=st.sampled_from(["round_shape", "cross", "circle", "polygon", "triangle", "ring"]),
       size=st.sampled_from([None, "large", "small"]), pattern=st.sampled_from([None, "dotted", "checkered"]),
       colour=st.sampled_from([None, "purple", "red"]), data=st.data())
def test_any_grammar_phrase_parses_to_its_concept(noun, size, pattern, colour, data):
    mods = [(f, v) for f, v in (("size", size), ("pattern", pattern), ("colour", colour)) if v]
    order = data.draw(st.permutations(mods))
    words = [data.draw(st.sampled_from(SURFACE[v])) for _, v in order]
    head = data.draw(st.sampled_from(SURFACE[noun]))
    if data.draw(st.booleans()) and head in ("circle", "triangle", "ring", "polygon"):
        head += "s"
    phrase = " ".join([*words, head])
    concept = SEM.parse(phrase)
    assert concept == Concept(noun, size=size, pattern=pattern, colour=colour)
    assert SEM.parse(SEM.text(concept)) == concept  # canonical text round-trips


def test_semantics_match_an_independent_reference():
    rng = np.random.default_rng(0)
    vocab = vocabulary("base")
    checked = 0
    for scene in SCENES:
        for _ in range(150):
            concept = Concept(str(rng.choice(NOUNS)),
                              size=rng.choice([None, *vocab.size]),
                              pattern=rng.choice([None, "solid", "striped", "dotted", "wavy"]),
                              colour=rng.choice([None, *vocab.colour]))
            got = SEM.select(concept, scene.objects)
            assert got == reference_select(concept, scene.objects), (scene.key, concept)
            assert (concept in SEM.present_concepts(scene.objects)) == bool(got)
            checked += bool(got)
    assert checked > 100  # both positive and negative concepts were checked


def test_hierarchy_closure():
    for scene in SCENES:
        polygons = SEM.select("polygon", scene.objects)
        parts = [o for n in ("triangle", "square", "hexagon", "diamond") for o in SEM.select(n, scene.objects)]
        assert sorted(o.id for o in polygons) == sorted(o.id for o in parts)
        assert len(SEM.select("shape", scene.objects)) == len(scene.objects)
        assert SEM.select("red shape", scene.objects) == [o for o in scene.objects if o.colour == "red"]


def test_positive_phrases_are_positive_and_cover_every_kind():
    for scene in SCENES:
        positives = SEM.positive_concepts(scene.objects)
        assert positives and all(SEM.select(c, scene.objects) for c in positives)
        texts = {SEM.text(c) for c in positives}
        for o in scene.objects:
            assert SEM.text(Concept(o.shape, o.size, o.pattern, o.colour)) in texts
            assert o.shape.replace("_", " ") in texts and f"{o.colour} {o.shape}" in texts
        full = SEM.positive_concepts(scene.objects, mode="all")
        assert set(positives) <= set(full) == SEM.present_concepts(scene.objects)


def test_hard_negatives_are_absent_siblings_and_swaps():
    scene = next(s for s in SCENES if any(o.shape == "triangle" for o in s.objects)
                 and not any(o.shape == "hexagon" for o in s.objects))
    hard = SEM.hard_negative_concepts(scene.objects, "base")
    assert hard and not any(SEM.select(c, scene.objects) for c in hard)
    assert Concept("hexagon") in hard  # an ontology sibling of a present shape
    tri = next(o for o in scene.objects if o.shape == "triangle")
    swapped = [Concept("triangle", colour=c) for c in vocabulary("base").colour
               if not any(o.shape == "triangle" and o.colour == c for o in scene.objects)]
    assert swapped and set(swapped) <= set(hard)
    assert not any(c.head in ("crescent", "diamond") for c in hard)  # night-only shapes stay out of base
    assert tri


def test_negatives_per_image():
    rng = np.random.default_rng(3)
    for scene in SCENES:
        negs = SEM.negative_concepts(scene.objects, scene.domain, 12, rng)
        assert len(negs) == 12 and len({c for c, _ in negs}) == 12
        assert sum(hard for _, hard in negs) >= 6
        assert not any(SEM.select(c, scene.objects) for c, _ in negs)
