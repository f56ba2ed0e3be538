"""SA-Co gold export/import and mask helpers: pixel-exact round trips (property test), bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from storage.errors import SacoFormatError
from storage.masks import MaskSizeError, instance_to_mask, mask_to_instance
from storage.records import Lineage, Pair, PhraseError, Sample, pair_id, validate_phrase
from storage.saco import ImageMeta, from_saco, read_saco, to_saco, without_dropped, write_saco


@st.composite
def masks(draw, h: int, w: int):
    bits = draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    arr = np.array(bits, dtype=bool).reshape(h, w)
    if not arr.any():
        arr[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = True
    return arr


@st.composite
def pair_sets(draw):
    n_media = draw(st.integers(1, 3))
    images, pairs, truth = {}, [], {}
    for m in range(n_media):
        h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        media = f"media/{m}.png"
        images[media] = ImageMeta(file_name=f"{m}.png", height=h, width=w)
        phrases = draw(
            st.lists(
                st.sampled_from(["cat", "red car", "yellow school bus", "tree", "ö dog"]),
                min_size=1,
                max_size=4,
                unique=True,
            )
        )
        for phrase in phrases:
            kind = draw(st.sampled_from(["positive", "negative", "dropped"]))
            ms = draw(st.lists(masks(h, w), min_size=1, max_size=3)) if kind == "positive" else []
            crowd = [draw(st.booleans()) for _ in ms]
            insts = [
                mask_to_instance(mk, source=draw(st.sampled_from(["human", "ai"])), iscrowd=c)
                for mk, c in zip(ms, crowd, strict=True)
            ]
            pair = Pair(
                media_id=media,
                phrase=phrase,
                label=kind,
                reason="vague" if kind == "dropped" else None,
                is_instance_exhaustive=draw(st.booleans()),
                is_pixel_exhaustive=draw(st.booleans()),
                instances=insts,
                lineage=Lineage(source="ai", model_version="m1"),
            )
            pairs.append(pair)
            truth[pair.pair_id] = ms
    return pairs, images, truth


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_sets())
def test_saco_round_trip_is_pixel_exact(data):
    pairs, images, truth = data
    doc = json.loads(json.dumps(to_saco(pairs, images)))
    assert len(doc["images"]) == len(pairs)
    assert doc["categories"] == [{"id": 1, "name": "object"}]
    back, metas = from_saco(doc)
    assert metas == {m: images[m] for m in {p.media_id for p in pairs}}
    assert [p.pair_id for p in back] == [p.pair_id for p in pairs]
    for orig, got in zip(pairs, back, strict=True):
        assert (got.label, got.reason, got.phrase) == (orig.label, orig.reason, orig.phrase)
        assert got.is_instance_exhaustive == orig.is_instance_exhaustive
        assert got.is_pixel_exhaustive == orig.is_pixel_exhaustive
        assert got.lineage == orig.lineage
        assert len(got.instances) == len(truth[orig.pair_id])
        for inst, want, o in zip(got.instances, truth[orig.pair_id], orig.instances, strict=True):
            assert np.array_equal(instance_to_mask(inst), want)
            assert (inst.iscrowd, inst.source) == (o.iscrowd, o.source)
            assert inst.bbox == pytest.approx(o.bbox, abs=1e-9)


def test_saco_fields():
    mask = np.zeros((10, 20), bool)
    mask[2:6, 4:14] = True
    images = {"m1": ImageMeta(file_name="a.jpg", height=10, width=20)}
    pos = Pair(
        media_id="m1",
        phrase="Red  Car",
        label="positive",
        instances=[mask_to_instance(mask, "human", score=0.9)],
    )
    neg = Pair(media_id="m1", phrase="zebra", label="negative")
    drop = Pair(media_id="m1", phrase="thing", label="dropped", reason="vague phrase")
    doc = to_saco([pos, neg, drop], images)
    img = doc["images"][0]
    assert img["id"] == pair_id("m1", "red car") and img["text_input"] == "Red  Car"
    assert (img["height"], img["width"], img["media_id"], img["file_name"]) == (
        10,
        20,
        "m1",
        "a.jpg",
    )
    assert "label" not in img and doc["images"][2]["label"] == "dropped"
    assert doc["images"][2]["reason"] == "vague phrase"
    (ann,) = doc["annotations"]
    assert ann["image_id"] == img["id"] and ann["id"] == 1 and ann["category_id"] == 1
    assert ann["bbox"] == pytest.approx([4 / 20, 2 / 10, 10 / 20, 4 / 10])
    assert (
        ann["area"] == 40
        and ann["iscrowd"] == 0
        and ann["source"] == "human"
        and ann["score"] == 0.9
    )
    assert isinstance(ann["segmentation"]["counts"], str)
    gold = without_dropped(doc)
    assert [e["id"] for e in gold["images"]] == [pos.pair_id, neg.pair_id]
    assert len(to_saco([pos, neg, drop], images, include_dropped=False)["images"]) == 2


def test_write_read_saco_atomic(object_store):
    images = {"m": ImageMeta(file_name="m.png", height=4, width=4)}
    doc = to_saco([Pair(media_id="m", phrase="cup", label="negative")], images)
    uri = write_saco(object_store.uri("export/saco.json"), doc, store=object_store)
    assert read_saco(uri, store=object_store) == doc
    object_store.write_bytes("export/bad.json", b"{not json")
    with pytest.raises(SacoFormatError, match="bad.json"):
        read_saco(object_store.uri("export/bad.json"), store=object_store)


def test_mask_size_mismatch():
    inst = mask_to_instance(np.ones((5, 5), bool), "ai")
    with pytest.raises(SacoFormatError, match="5x5 does not match image size 6x5"):
        to_saco(
            [Pair(media_id="m", phrase="x", label="positive", instances=[inst])],
            {"m": ImageMeta(file_name="m.png", height=5, width=6)},
        )
    with pytest.raises(MaskSizeError, match="does not match"):
        mask_to_instance(np.ones((5, 5), bool), "ai", image_size=(5, 6))
    with pytest.raises(ValidationError, match="does not match image size"):
        Sample(
            key="k",
            image=b"",
            width=6,
            height=5,
            pairs=[Pair(media_id="m", phrase="x", label="positive", instances=[inst])],
        )
    with pytest.raises(MaskSizeError, match="2-D"):
        mask_to_instance(np.ones((2, 5, 5), bool), "ai")
    with pytest.raises(MaskSizeError, match="0/1"):
        mask_to_instance(np.full((2, 2), 3), "ai")
    doc = to_saco(
        [Pair(media_id="m", phrase="x", label="positive", instances=[inst])],
        {"m": ImageMeta(file_name="m.png", height=5, width=5)},
    )
    doc["images"][0]["width"] = 7
    with pytest.raises(SacoFormatError, match="does not match"):
        from_saco(doc)


@pytest.mark.parametrize(
    "phrase", [b"caf\xe9", "red\x00car", "tab\there", "bidi\u202ecar", "", "  "]
)
def test_bad_phrases(phrase):
    with pytest.raises(PhraseError):
        validate_phrase(phrase)
    with pytest.raises(ValidationError):
        Pair(media_id="m", phrase=phrase, label="negative")


def test_bad_documents():
    with pytest.raises(SacoFormatError, match="no 'images'"):
        from_saco({"annotations": []})
    images = {"m": ImageMeta(file_name="m.png", height=4, width=4)}
    doc = to_saco([Pair(media_id="m", phrase="cup", label="negative")], images)
    doc["annotations"].append({"id": 9, "image_id": "nope", "bbox": [0, 0, 1, 1]})
    with pytest.raises(SacoFormatError, match="unknown image_id 'nope'"):
        from_saco(doc)
    with pytest.raises(SacoFormatError, match="no ImageMeta"):
        to_saco([Pair(media_id="other", phrase="cup", label="negative")], images)
    with pytest.raises(SacoFormatError, match="duplicates pair id"):
        to_saco(
            [
                Pair(media_id="m", phrase="cup", label="negative"),
                Pair(media_id="m", phrase="CUP", label="negative"),
            ],
            images,
        )
