"""Label Studio pieces that need no server: brush RLE codec, configs, task payloads, answers, settings."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.humans import ls_configs as cfg
from engine.humans.base import HumanTask
from engine.humans.ls_client import LabelStudioSettings, is_transient
from engine.humans.ls_masks import (
    BrushFormatError,
    brush_result,
    brush_to_mask,
    instance_to_brush,
    mask_to_brush,
    polygon_result,
    result_to_instance,
)
from engine.humans.ls_tasks import AnnotationError, result_from_annotation, task_payload
from storage.masks import instance_to_mask, mask_to_instance


@st.composite
def masks(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["random", "rects", "empty", "full"]))
    if kind == "empty":
        return np.zeros((h, w), bool)
    if kind == "full":
        return np.ones((h, w), bool)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    if kind == "random":
        return rng.random((h, w)) < draw(st.floats(0.05, 0.95))
    m = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(1, 4))):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = True
    return m


@settings(max_examples=150, deadline=None)
@given(masks())
def test_coco_to_brush_to_coco_is_pixel_exact(mask):
    inst = mask_to_instance(mask, source="ai")
    rle, w, h = instance_to_brush(inst)
    assert (w, h) == (mask.shape[1], mask.shape[0])
    back = mask_to_instance(brush_to_mask(rle, w, h), source="human")
    assert back.rle["counts"] == inst.rle["counts"]
    np.testing.assert_array_equal(instance_to_mask(back), mask)


def test_brush_is_label_studio_rgba_stream():
    """The stream decodes (SDK decoder) to H x W x 4 with 255 in every channel of a masked pixel."""
    from label_studio_sdk.converter.brush import decode_rle

    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    flat = decode_rle(bytes(mask_to_brush(mask)))
    rgba = flat.reshape(5, 7, 4)
    assert (rgba[mask] == 255).all() and (rgba[~mask] == 0).all()


def test_antialiased_alpha_thresholds_at_half():
    from label_studio_sdk.converter.brush import encode_rle

    alpha = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[..., 3] = alpha
    got = brush_to_mask(encode_rle(rgba.ravel()), 4, 1)
    assert got.tolist() == [[False, False, True, True]]


def test_brush_of_wrong_size_is_a_named_error():
    rle = mask_to_brush(np.ones((4, 4), bool))
    with pytest.raises(BrushFormatError, match="expected 5x4x4"):
        brush_to_mask(rle, 5, 4)


def test_polygon_and_brush_results_become_instances():
    poly = polygon_result([(2, 2), (12, 2), (12, 8), (2, 8)], 20, 10, cfg.POLYGON, cfg.IMAGE, cfg.CROWD)
    inst = result_to_instance(poly)
    mask = instance_to_mask(inst)
    assert inst.iscrowd and mask.shape == (10, 20)
    assert mask[5, 7] and not mask[0, 0] and not mask[9, 19]
    assert abs(int(mask.sum()) - 11 * 7) <= 2  # PIL fills the boundary
    m = np.zeros((10, 20), bool)
    m[1:4, 1:9] = True
    item = brush_result(mask_to_instance(m, "ai"), cfg.BRUSH, cfg.IMAGE, cfg.OBJECT)
    assert not result_to_instance(item).iscrowd
    np.testing.assert_array_equal(instance_to_mask(result_to_instance(item)), m)


def test_choices_map_back_to_engine_labels():
    for kind in ("mv", "ev", "correction"):
        for label in cfg.KIND_LABELS[kind]:
            assert cfg.label_from_choice(kind, cfg.choice_for_label(kind, label)) == label
            assert cfg.label_from_choice(kind, label) == label
    with pytest.raises(cfg.LabelMappingError, match="'Maybe' is not a mv label"):
        cfg.label_from_choice("mv", "Maybe")
    mv = cfg.mv_config()
    assert all(f'hotkey="{i}"' in mv for i in range(1, 6)) and 'hotkey="6"' not in mv
    assert all(f'hotkey="{i}"' in cfg.ev_config() for i in range(1, 7))
    assert "<BrushLabels" in cfg.correction_config() and "<PolygonLabels" in cfg.correction_config()


def _image(h=24, w=32):
    rgb = np.full((h, w, 3), 40, np.uint8)
    return rgb


def _decode_data_url(url: str) -> np.ndarray:
    head, _, body = url.partition(",")
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body))).convert("RGB"))


def test_mv_payload_overlays_the_mask_and_keeps_the_id():
    m = np.zeros((24, 32), bool)
    m[4:12, 6:20] = True
    task = HumanTask(task_id="t-1", kind="mv", media_id="m", phrase="red square", masks=[mask_to_instance(m, "ai")])
    payload = task_payload(task, _image())
    data = payload["data"]
    assert data["engine_task_id"] == "t-1" and data["phrase"] == "red square" and "predictions" not in payload
    shown = _decode_data_url(data["image"])
    assert (shown[m] != 40).any(axis=-1).all() and (shown[~m][:, 0] == 40).mean() > 0.95


def test_correction_payload_preloads_proposals_and_checks_sizes():
    m = np.zeros((24, 32), bool)
    m[2:5, 2:9] = True
    inst = mask_to_instance(m, "ai", score=0.8)
    task = HumanTask(task_id="c-1", kind="correction", media_id="m", phrase="x", masks=[inst])
    pred = task_payload(task, _image())["predictions"][0]
    region = pred["result"][0]
    assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == [cfg.OBJECT]
    np.testing.assert_array_equal(brush_to_mask(region["value"]["rle"], 32, 24), m)
    with pytest.raises(ValueError, match="task 'c-1' mask 0 size 32x24 does not match image size 16x16"):
        task_payload(task, _image(16, 16))


def test_annotations_become_results():
    mv = {"id": 7, "completed_by": 3, "lead_time": 4.5, "result": [
        {"from_name": cfg.DECISION, "to_name": cfg.IMAGE, "type": "choices", "value": {"choices": ["Whole image"]}}]}
    r = result_from_annotation("mv", "t", mv)
    assert (r.label, r.seconds, r.rater) == ("whole_image", 4.5, "label-studio:3")
    with pytest.raises(AnnotationError, match="task 't' annotation 8: no ev decision"):
        result_from_annotation("ev", "t", {"id": 8, "result": []})
    m = np.zeros((10, 20), bool)
    m[1:4, 1:9] = True
    brush = brush_result(mask_to_instance(m, "ai"), cfg.BRUSH, cfg.IMAGE, cfg.OBJECT)
    poly = polygon_result([(10, 5), (18, 5), (18, 9)], 20, 10, cfg.POLYGON, cfg.IMAGE, cfg.OBJECT)
    cor = result_from_annotation("correction", "c", {"id": 9, "lead_time": 30, "result": [brush, poly]})
    assert cor.label == "positive" and len(cor.instances) == 2 and cor.seconds == 30
    dropped = {"id": 10, "result": [brush, {"from_name": cfg.OUTCOME, "type": "choices", "value": {"choices": ["dropped"]}},
                                    {"from_name": cfg.REASON, "type": "choices", "value": {"choices": ["whole_image"]}}]}
    r = result_from_annotation("correction", "c", dropped)
    assert (r.label, r.reason, r.instances) == ("dropped", "whole_image", [])
    assert result_from_annotation("correction", "c", {"id": 11, "result": []}).label == "negative"


def test_settings_from_env_and_secret_never_shown(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://ls.example:8080/")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "s3cr3t-token-value")
    s = LabelStudioSettings(campaign="c")
    assert s.url == "http://ls.example:8080" and s.api_key.get_secret_value() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.model_dump())
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with pytest.raises(ValueError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioSettings(campaign="c")
    with pytest.raises(ValueError, match="url 'ftp://x' must start with http"):
        LabelStudioSettings(campaign="c", url="ftp://x", api_key="k")


def test_transient_errors():
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    assert is_transient(httpx.ConnectError("refused"))
    assert is_transient(ApiError(status_code=503, body="down"))
    assert not is_transient(ApiError(status_code=400, body="bad config"))
    assert not is_transient(ValueError("x"))


def test_skipped_and_repeated_annotations_do_not_count_as_raters():
    from engine.humans.label_studio import LabelStudioBackend

    anns = [{"id": 5, "completed_by": 1, "was_cancelled": True},  # skipped
            {"id": 7, "completed_by": 2}, {"id": 6, "completed_by": 1}, {"id": 9, "completed_by": 2}]
    assert [a["id"] for a in LabelStudioBackend._first_per_rater(anns)] == [6, 7]


def test_task_image_comes_from_its_media_uri(tmp_path):
    """A campaign over photos: the task names where its image is, and Label Studio shows that image."""
    from engine.humans.label_studio import LabelStudioBackend

    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:, :, 2] = 200  # a blue photo, not a shapes-world image
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    task = HumanTask(task_id="t1", kind="correction", media_id="folder:photo.png", media_uri=str(path),
                     phrase="boat")
    backend = LabelStudioBackend(LabelStudioSettings(campaign="c", url="http://127.0.0.1:9", api_key="k"),
                                 client=object())
    url = backend._payload(task)["data"]["image"]
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    assert shown.shape == photo.shape and np.array_equal(shown, photo)
