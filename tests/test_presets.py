"""Presets, offline tokenizer and preprocessing: tiny model builds, saves and reloads offline."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from model.presets import ModelLoadError, build_tiny, load_model, save_model
from model.preprocess import ImageDecodeError, load_image, preprocess_image, tokenize
from model.tokenizer import all_words, build_tokenizer


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


def test_tokenizer_covers_shapes_world_and_any_text():
    tok = build_tokenizer()
    assert len(tok) < 1200
    for word in all_words():  # every grammar word is one token
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    ids = tok("Zebra-crossing 42! héllo")["input_ids"]
    assert tok.unk_token_id not in ids[1:-1]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_tiny_config_and_forward(tiny):
    cfg = tiny.model.config
    assert tiny.image_size == 224
    assert cfg.detr_decoder_config.num_queries == 32
    assert cfg.text_config.vocab_size == len(tiny.tokenizer)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        assert 0 <= getattr(cfg.text_config, name) < cfg.text_config.vocab_size
    assert sum(p.numel() for p in tiny.model.parameters()) < 500_000
    ids, mask = tokenize(tiny.tokenizer, ["red circle", "small striped triangle"], tiny.max_text_len)
    pix = torch.stack([preprocess_image(np.zeros((30, 40, 3), np.uint8), 224)] * 2)
    with torch.inference_mode():
        out = tiny.model(pixel_values=pix, input_ids=ids, attention_mask=mask)
    assert out.pred_masks.shape == (2, 32, 64, 64)
    assert out.pred_boxes.shape == (2, 32, 4)
    assert out.presence_logits.shape == (2, 1)


def test_build_tiny_is_deterministic(tiny):
    other = build_tiny(seed=0)
    for (k, a), (_, b) in zip(tiny.model.state_dict().items(), other.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_save_and_load_round_trip_offline(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    save_model(tiny, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.image_size == 224 and loaded.source == str(tmp_path / "m")
    for (k, a), (_, b) in zip(tiny.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), k
    phrases = ["small striped triangle", "unknown-word 7"]
    assert torch.equal(tokenize(tiny.tokenizer, phrases)[0], tokenize(loaded.tokenizer, phrases)[0])


def test_bad_model_dirs_give_clear_errors(tiny, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path / "empty")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="'bert' model, not SAM 3"):
        load_model(other)
    noweights = tmp_path / "noweights"
    save_model(tiny, noweights)
    (noweights / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(noweights)
    monkeypatch.delenv("SAM3_FULL_DIR", raising=False)
    with pytest.raises(ModelLoadError, match="SAM3_FULL_DIR"):
        load_model("full")


def test_preprocess_matches_sam3_image_processor():
    from transformers import Sam3ImageProcessor

    proc = Sam3ImageProcessor(size={"height": 224, "width": 224})
    rng = np.random.RandomState(0)
    for img in (Image.fromarray(rng.randint(0, 255, (300, 451, 3), np.uint8)),
                Image.fromarray(rng.randint(0, 255, (50, 70, 4), np.uint8), "RGBA")):
        ref = proc(img, return_tensors="pt")["pixel_values"][0]
        assert torch.allclose(preprocess_image(img, 224), ref, atol=1e-5)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "1", "P", "I;16", "I", "F", "CMYK"])
def test_any_image_mode_becomes_rgb(mode):
    base = Image.fromarray(np.random.RandomState(1).randint(0, 255, (17, 23, 3), np.uint8))
    img = base.convert(mode) if mode not in ("I;16", "I", "F") else Image.fromarray(
        (np.arange(17 * 23).reshape(17, 23) * 160).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    assert img.mode == mode
    buf = io.BytesIO()
    img.save(buf, format="PNG" if mode not in ("F", "CMYK", "I") else "TIFF")
    for source in (img, buf.getvalue()):
        rgb = load_image(source, "x")
        assert rgb.shape == (17, 23, 3) and rgb.dtype == np.uint8
    if mode in ("I;16", "I"):
        assert load_image(img).max() > 200  # 16-bit range scaled, not clipped to black/white


def test_arrays_and_exif_and_corrupt():
    assert load_image(np.zeros((5, 6), np.uint16)).shape == (5, 6, 3)
    assert load_image(np.ones((5, 6, 1), np.float32)).max() == 255
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90°
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).shape == (20, 10, 3)
    with pytest.raises(ImageDecodeError, match="'broken-7'"):
        load_image(b"\x89PNG\r\n\x1a\nnot really", "broken-7")
    with pytest.raises(ImageDecodeError, match="unsupported image type"):
        load_image(42, "n")


def test_loads_a_sam3_video_checkpoint_layout(tiny, tmp_path):
    """facebook/sam3 ships a sam3_video config whose detector weights are prefixed detector_model."""
    from safetensors.torch import save_file
    from transformers import Sam3VideoConfig

    d = tmp_path / "video"
    save_model(tiny, d)
    Sam3VideoConfig(detector_config=tiny.model.config.to_dict()).save_pretrained(d)
    state = {f"detector_model.{k}": v.contiguous() for k, v in tiny.model.state_dict().items()}
    state["tracker_model.unused"] = torch.zeros(2)
    save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    loaded = load_model(d)
    assert loaded.model.config.detr_decoder_config.num_queries == 32
    for (k, a), (_, b) in zip(tiny.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), k
