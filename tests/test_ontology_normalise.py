"""Noun-phrase normalisation: canonical forms, and every rejection with its reason."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ontology.normalise import PhraseNormaliser, normalise, singular


@pytest.mark.parametrize("raw, expected", [
    ("The Yellow  School Buses", "yellow school bus"),
    ("two dogs", "dog"),
    ("the dog's bowls", "dog bowl"),
    ("cats' toys", "cat toy"),
    ("bottles of water", "bottle of water"),
    ("glasses of wine", "glass of wine"),
    ("a pair of scissors", "pair of scissors"),
    ("his hat", "hat"),
    ("lots of apples", "apple"),
    ("7 apples", "apple"),
    ("white mice", "white mouse"),
    ("children", "child"),
    ("sunglasses", "sunglasses"),
    ("lenses", "lens"),
    ("a bus", "bus"),
    ("Café\tchairs", "café chair"),
    ("gray Siamese cat.", "gray siamese cat"),
])
def test_canonical_forms(raw, expected):
    result = normalise(raw)
    assert result.ok, result.message
    assert result.phrase == expected


@pytest.mark.parametrize("raw, reason", [
    ("it", "non_groundable"),
    ("the middle", "non_groundable"),
    ("left side", "non_groundable"),
    ("something", "non_groundable"),
    ("the scene", "whole_image"),
    ("background", "whole_image"),
    ("a\x07b", "control_character"),
    ("cat\u200b", "control_character"),
    ("<b>cat</b>", "bad_character"),
    ("x", "too_short"),
    ("   ", "empty"),
    ("the", "empty"),
    ("a" * 61, "too_long"),
    ("big red shiny old wooden toy car box", "too_many_words"),
    (b"\xff\xfe", "not_text"),
    (42, "not_text"),
])
def test_rejections_carry_reasons(raw, reason):
    result = normalise(raw)
    assert not result.ok and result.reason == reason
    assert result.message.startswith(reason + ":") and len(result.message) > len(reason) + 2


def test_blocklist_and_limits_are_configurable():
    n = PhraseNormaliser({"blocklist": ["gun", "slur phrase"], "max_words": 2, "max_chars": 12})
    assert n.normalise("guns").reason == "blocklisted"
    assert n.normalise("red gun").reason == "blocklisted"
    assert n.normalise("Slur  Phrase").reason == "blocklisted"
    assert n.normalise("red big cat").reason == "too_many_words"
    assert n.normalise("refrigerators").reason == "too_long"
    assert PhraseNormaliser({"singularise": False}).normalise("dogs").phrase == "dogs"


def test_normalise_many_counts_and_dedupes():
    report = PhraseNormaliser().normalise_many(["Dogs", "a dog", "it", "the background", "cat", "cats"])
    assert report.kept == ["dog", "cat"] and report.duplicates == 2
    assert report.reasons == {"non_groundable": 1, "whole_image": 1}


def test_singular_keeps_singular_words():
    for word in ("bus", "glass", "lens", "cactus", "species", "news", "tennis", "chess"):
        assert singular(word) == word


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_never_raises_and_is_idempotent(text):
    result = normalise(text)
    if result.ok:
        again = normalise(result.phrase)
        assert again.ok and again.phrase == result.phrase
        assert result.phrase == result.phrase.strip().lower()
    else:
        assert result.reason and result.message
