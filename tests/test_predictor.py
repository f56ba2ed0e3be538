"""Batched predictor: equal to one-pair full-recompute forwards, any image, errors not fatal."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from model.postprocess import masks_to_rle, upsample_masks, xyxy_to_pixel_xywh
from model.predictor import Predictor, Prompt
from model.preprocess import boxes_xywh_to_cxcywh, load_image, preprocess_image, tokenize
from model.presets import build_tiny

THR = 0.2  # random tiny weights score about 0.25: keep masks so that masks are compared too


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are small: extra intra-op threads only contend on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny(seed=0)


def _images():
    rng = np.random.RandomState(0)
    rgb = Image.fromarray(rng.randint(0, 255, (61, 97, 3), np.uint8))
    rgba = Image.fromarray(rng.randint(0, 255, (40, 33, 4), np.uint8), "RGBA")
    grey16 = Image.fromarray((rng.randint(0, 65535, (50, 70))).astype(np.uint16))
    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, (9, 301), np.uint8), "L").save(buf, format="PNG")
    return {"rgb": rgb, "rgba": rgba, "grey16": grey16, "thin-png": buf.getvalue()}


def _items():
    imgs = _images()
    phrases = ["red circle", "small striped triangle", "star"]
    items = [(k, v, phrases) for k, v in imgs.items()]
    items.insert(2, ("corrupt", b"\xff\xd8\xff\xe0 truncated jpeg", phrases))
    items.append(("boxed", imgs["rgb"], [Prompt("circle", [[10, 10, 30, 20], [50, 5, 20, 20]], [1, 0]),
                                          Prompt("ring", [[0, 0, 40, 40]]), "hexagon"]))
    return items


def _reference(tiny, image, prompt):
    """One pair, full recompute: the raw model forward."""
    rgb = load_image(image)
    h, w = rgb.shape[:2]
    ids, mask = tokenize(tiny.tokenizer, [prompt.phrase], tiny.max_text_len)
    kwargs = {}
    if len(prompt.boxes):
        kwargs["input_boxes"] = boxes_xywh_to_cxcywh(prompt.boxes, w, h)[None]
        kwargs["input_boxes_labels"] = torch.tensor([list(prompt.labels) or [1] * len(prompt.boxes)])
    with torch.inference_mode():
        out = tiny.model(pixel_values=preprocess_image(rgb, tiny.image_size)[None], input_ids=ids,
                         attention_mask=mask, **kwargs)
    presence = out.presence_logits.sigmoid()[0, 0]
    scores = out.pred_logits.sigmoid()[0] * presence
    keep = torch.nonzero(scores >= THR)[:, 0]
    masks = upsample_masks(out.pred_masks[0, keep], h, w)
    boxes = xyxy_to_pixel_xywh(out.pred_boxes[0, keep], w, h)
    return float(presence), scores, keep, masks, boxes


def _as_prompt(p):
    return p if isinstance(p, Prompt) else Prompt(p)


def test_matches_one_pair_full_recompute(tiny):
    items = _items()
    results = Predictor(tiny, batch_size=4, image_batch_size=3, score_threshold=THR).predict(items)
    assert [r.image_id for r in results] == [i[0] for i in items]
    checked = 0
    for (image_id, image, phrases), res in zip(items, results):
        if image_id == "corrupt":
            continue
        assert res.error is None and len(res.pairs) == len(phrases)
        for k, (prompt, pair) in enumerate(zip(phrases, res.pairs)):
            prompt = _as_prompt(prompt)
            assert pair.prompt_index == k and pair.phrase == prompt.phrase
            presence, scores, keep, masks, boxes = _reference(tiny, image, prompt)
            assert pair.presence == pytest.approx(presence, abs=1e-5)
            assert np.allclose(pair.scores, scores.numpy(), atol=1e-5)
            by_query = {i.query: i for i in pair.instances}
            assert sorted(by_query) == keep.tolist()
            for q, m, b in zip(keep.tolist(), masks, boxes):
                inst = by_query[q]
                assert np.allclose(inst.bbox, b.numpy(), atol=1e-3)
                got = mask_utils.decode(inst.rle).astype(bool)
                ref = m.numpy()
                inter, union = (got & ref).sum(), (got | ref).sum()
                assert union == 0 or inter / union > 0.995
                assert inst.area == got.sum()
                checked += 1
    assert checked > 50


def test_errors_are_records_and_modes_are_handled(tiny):
    results = {r.image_id: r for r in Predictor(tiny, batch_size=8, score_threshold=THR).predict(_items())}
    assert "corrupt" in results["corrupt"].error and results["corrupt"].pairs == []
    assert (results["rgba"].width, results["rgba"].height) == (33, 40)
    assert (results["thin-png"].width, results["thin-png"].height) == (301, 9)
    assert (results["grey16"].width, results["grey16"].height) == (70, 50)
    for r in results.values():
        for pair in r.pairs:
            for inst in pair.instances:
                assert inst.rle["size"] == [r.height, r.width] and inst.score >= THR
            assert [i.score for i in pair.instances] == sorted((i.score for i in pair.instances), reverse=True)
            assert len(pair.scores) == tiny.model.config.detr_decoder_config.num_queries
            assert set(pair.semantic) >= {"semantic_area", "unexplained_area", "explained_fraction"}
            json.dumps(pair.to_dict())


def test_batch_size_does_not_change_results(tiny):
    items = [i for i in _items() if i[0] in ("rgb", "corrupt", "grey16", "boxed")]
    a = Predictor(tiny, batch_size=1, image_batch_size=1, score_threshold=THR, prefetch=False).predict(items)
    b = Predictor(tiny, batch_size=7, image_batch_size=5, score_threshold=THR).predict(items)
    for ra, rb in zip(a, b):
        assert ra.error == rb.error
        for pa, pb in zip(ra.pairs, rb.pairs):
            assert np.allclose(pa.scores, pb.scores, atol=1e-5)
            assert [i.query for i in pa.instances] == [i.query for i in pb.instances]
            assert sum(i.rle["counts"] == j.rle["counts"] for i, j in zip(pa.instances, pb.instances)) >= \
                0.95 * len(pa.instances)


def test_exemplar_boxes_change_the_prediction(tiny):
    img = _images()["rgb"]
    p = Predictor(tiny, score_threshold=THR)
    plain, boxed, neg = p.predict([
        ("a", img, ["circle"]),
        ("b", img, [("circle", [[10, 10, 30, 20]])]),
        ("c", img, ["circle"], ([[10, 10, 30, 20]], [0])),
    ])
    assert not np.allclose(plain.pairs[0].scores, boxed.pairs[0].scores)
    assert not np.allclose(boxed.pairs[0].scores, neg.pairs[0].scores)
    with pytest.raises(ValueError, match="labels"):
        Prompt("circle", [[1, 2, 3, 4]], [1, 0])


def test_rle_matches_pycocotools():
    rng = np.random.RandomState(3)
    masks = rng.rand(6, 23, 31) > 0.6
    masks[1] = False
    masks[2] = True
    masks[3, 0, 0] = True
    masks[4] = np.zeros((23, 31), bool)
    masks[4, 5:9, 7:30] = True
    big = np.zeros((3, 600, 800), bool)  # long runs: multi-character counts, negative differences
    big[0, 100:500, 50:700] = True
    big[1, :, 400:] = True
    big[2, 599, 799] = True
    for batch in (masks, big):
        rles, areas = masks_to_rle(torch.from_numpy(batch))
        for m, rle, area in zip(batch, rles, areas):
            ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            assert rle["counts"] == ref["counts"].decode() and rle["size"] == list(m.shape)
            assert area == m.sum()


def test_gpu_import_chain_needs_no_pycocotools_ray_webdataset_typer():
    """The GPU image lacks these packages: the predictor and its bench must import without them."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('pycocotools', 'ray', 'webdataset', 'typer', 'airflow'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['bench']\n"
        "import model.presets, model.predictor, model.preprocess, model.postprocess\n"
        "sys.path.insert(0, 'bench'); import predictor\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_streaming_order_and_items_without_phrases(tiny):
    imgs = _images()
    items = [("a", b"bad", ["x"]), ("b", imgs["rgb"], []), ("c", imgs["rgba"], ["circle"]), ("d", b"bad", ["y"])]
    out = list(Predictor(tiny, batch_size=2, image_batch_size=1, score_threshold=THR).predict_iter(items))
    assert [r.image_id for r in out] == ["a", "b", "c", "d"]
    assert out[0].error and out[3].error and out[1].pairs == [] and len(out[2].pairs) == 1


def test_nms_removes_duplicates_within_a_pair_only():
    from model.postprocess import nms_per_pair

    boxes = torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.11, 0.1, 0.4, 0.41], [0.6, 0.6, 0.9, 0.9],
                          [0.1, 0.1, 0.4, 0.4]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    keep = nms_per_pair(boxes, scores, np.array([0, 0, 0, 1]), iou=0.5)
    assert keep.tolist() == [0, 2, 3]  # the near-copy in pair 0 goes; pair 1's box is not compared


def test_nms_setting_travels_with_the_model(tiny, tmp_path):
    from model.presets import load_model, save_model

    items = [i for i in _items() if i[0] in ("rgb", "boxed")]
    plain = Predictor(tiny, score_threshold=0.0).predict(items)
    tiny.extra["nms_iou"] = 0.3
    try:
        save_model(tiny, tmp_path / "m")
    finally:
        tiny.extra.pop("nms_iou")
    loaded = load_model(tmp_path / "m")
    assert loaded.extra == {"nms_iou": 0.3}
    nms = Predictor(loaded, score_threshold=0.0).predict(items)
    n_plain = sum(len(p.instances) for r in plain for p in r.pairs)
    n_nms = sum(len(p.instances) for r in nms for p in r.pairs)
    assert n_nms < n_plain  # every query kept without NMS; overlapping ones suppressed with it
    off = Predictor(loaded, score_threshold=0.0, nms_iou=0).predict(items)
    assert sum(len(p.instances) for r in off for p in r.pairs) == n_plain
