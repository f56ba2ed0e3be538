"""Training data and loop: pair sampling, batches from shards, checkpoints, resume, memory options."""

from pathlib import Path

import pytest
import torch

from model.data import (
    PairBatch,
    SamplingConfig,
    is_hard_negative,
    iter_batches,
    iter_samples,
    sample_pairs,
)
from model.train import (
    TrainConfig,
    build_model,
    enable_gradient_checkpointing,
    latest_checkpoint,
    list_checkpoints,
    lr_factor,
    train,
)
from storage.records import Instance, Pair, Sample

SMALL = {"positives_per_image": 2, "negatives_per_image": 1, "hard_negatives_per_image": 1,
         "images_per_batch": 1, "shuffle_buffer": 4}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from engine.world.samples import generate_samples
    from storage.shards import write_shards

    out = tmp_path_factory.mktemp("shards")
    return write_shards(generate_samples(6, seed=3, negatives_per_image=6), str(out), "train", max_samples=3)


def _cfg(**kw):
    base = dict(steps=6, lr=2e-3, warmup_steps=2, checkpoint_every=2, log_every=100, sampling=SMALL, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _inst():
    return Instance(rle={"size": [4, 4], "counts": "04"}, bbox=[0, 0, 2, 2])


def test_sample_pairs_kinds_and_dropped():
    pairs = [
        Pair(media_id="m", phrase="red circle", label="positive", instances=[_inst()]),
        Pair(media_id="m", phrase="blue circle", label="negative"),  # shares "circle": hard
        Pair(media_id="m", phrase="green star", label="negative", reason="hard negative (ontology)"),
        Pair(media_id="m", phrase="yellow square", label="negative"),
        Pair(media_id="m", phrase="the whole image", label="dropped", reason="whole_image"),
    ]
    sample = Sample(key="m", image=b"x", width=4, height=4, pairs=pairs)
    assert is_hard_negative(pairs[1], ["red circle"]) and is_hard_negative(pairs[2], ["red circle"])
    assert not is_hard_negative(pairs[3], ["red circle"])
    import random

    cfg = SamplingConfig(positives_per_image=5, negatives_per_image=5, hard_negatives_per_image=5)
    chosen = sample_pairs(sample, cfg, random.Random(0))
    kinds = {p.phrase: k for p, k in chosen}
    assert kinds == {"red circle": "positive", "blue circle": "hard_negative", "green star": "hard_negative",
                     "yellow square": "negative"}
    few = sample_pairs(sample, SamplingConfig(positives_per_image=1, negatives_per_image=0,
                                              hard_negatives_per_image=1), random.Random(0))
    assert sorted(k for _, k in few) == ["hard_negative", "positive"]


def test_batches_from_shards(shards):
    loaded = build_model(_cfg())
    cfg = SamplingConfig(**{**SMALL, "images_per_batch": 2, "mask_size": 64})
    batches = list(iter_batches(iter_samples(shards), loaded.tokenizer, loaded.image_size, 32, cfg))
    assert len(batches) == 3  # 6 images, 2 per batch
    b: PairBatch = batches[0]
    assert b.pixel_values.shape == (2, 3, 224, 224)
    assert b.input_ids.shape == (len(b), 32) and b.image_index.max() == 1
    kinds = [k for bb in batches for k in bb.kinds]
    assert "positive" in kinds and "hard_negative" in kinds
    for t, kind in zip(b.targets, b.kinds):
        assert (t.num > 0) == (kind == "positive")
        assert t.masks.shape[1:] == (64, 64)
        if t.num:
            assert t.boxes.min() >= 0 and t.boxes.max() <= 1
            assert torch.all(t.boxes[:, 2:] > t.boxes[:, :2])
    # skip: the same stream, fast-forwarded
    again = list(iter_batches(iter_samples(shards), loaded.tokenizer, loaded.image_size, 32, cfg, skip=2))
    assert again[0].pair_ids == batches[2].pair_ids


def test_short_phrase_curriculum_then_every_phrase(shards):
    loaded = build_model(_cfg())
    cfg = SamplingConfig(**{**SMALL, "positives_per_image": 8, "negatives_per_image": 4,
                            "short_phrase_batches": 3, "short_phrase_words": 1})
    batches = list(iter_batches(iter_samples(shards), loaded.tokenizer, loaded.image_size, 32, cfg))
    words = [[len(loaded.tokenizer.decode(ids, skip_special_tokens=True).split()) for ids in b.input_ids]
             for b in batches]
    assert all(n == 1 for w in words[:3] for n in w)
    assert any(n > 1 for w in words[3:] for n in w)


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    assert 0.1 < lr_factor(55, cfg) < 1.0
    # a time budget: the schedule follows the larger of step and time progress
    assert lr_factor(20, cfg, progress=1.0) == pytest.approx(0.1)
    assert lr_factor(20, cfg, progress=0.5) == pytest.approx(0.55)


def test_resume_matches_uninterrupted_run(shards, tmp_path):
    full = train(_cfg(), shards, tmp_path / "full")
    assert full.step == 6 and Path(full.model_dir, "config.json").is_file()

    part = train(_cfg(), shards, tmp_path / "split", stop_at=4)  # "killed" after step 4
    assert part.step == 4 and part.model_dir is None
    assert latest_checkpoint(tmp_path / "split").name == "step-00000004"
    resumed = train(_cfg(), shards, tmp_path / "split")
    assert resumed.resumed_from == 4 and resumed.step == 6
    assert [h["step"] for h in resumed.history] == [5, 6]
    # the resumed steps see the same batches and produce the same weights
    assert resumed.history[-1]["loss"] == pytest.approx(full.history[-1]["loss"], rel=1e-4)
    a = torch.load(latest_checkpoint(tmp_path / "full") / "state.pt", weights_only=False)["model"]
    b = torch.load(latest_checkpoint(tmp_path / "split") / "state.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    # checkpoints are pruned to keep_checkpoints and no temp folder is left behind
    assert len(list_checkpoints(tmp_path / "split")) == 2
    assert not [p for p in (tmp_path / "split" / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_freeze_and_checkpointing_options(shards, tmp_path):
    cfg = _cfg(steps=1, checkpoint_every=0, freeze_vision=True, freeze_text=True,
               gradient_checkpointing=True, bf16=True)  # bf16 is ignored on CPU
    loaded = build_model(cfg)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    res = train(cfg, shards, tmp_path / "frozen", loaded=loaded)
    assert res.step == 1
    after = loaded.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not any(k.startswith(("vision_encoder.", "text_encoder.")) for k in changed)
    assert any(k.startswith("detr_decoder.") for k in changed)
    assert enable_gradient_checkpointing(build_model(cfg).model) > 0


def test_config_errors():
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="no field 'nope'"):
        build_model(TrainConfig(model_overrides={"detr_decoder_config.nope": 1}))


def test_tiny_size_overrides_build_a_wider_deeper_model():
    loaded = build_model(TrainConfig(model_overrides={"hidden": 48, "vit_layers": 3, "decoder_layers": 3,
                                                      "num_queries": 16}))
    cfg = loaded.model.config
    vit = cfg.vision_config.backbone_config
    assert (vit.hidden_size, vit.num_hidden_layers, vit.global_attn_indexes) == (48, 3, [2])
    assert cfg.text_config.hidden_size == 48 and cfg.mask_decoder_config.hidden_size == 48
    assert (cfg.detr_decoder_config.num_layers, cfg.detr_decoder_config.num_queries) == (3, 16)
    default = build_model(TrainConfig())
    assert sum(p.numel() for p in loaded.model.parameters()) > sum(p.numel() for p in default.model.parameters())


def test_aux_outputs_reproduce_the_last_layer():
    import model.pair_model as mt

    loaded = build_model(_cfg())
    pm = mt.Sam3PairModel(loaded.model, aux=True)
    ids, mask = loaded.tokenizer(["red circle", "star"], padding="max_length", max_length=32,
                                 return_tensors="pt").values()
    px = torch.randn(1, 3, 224, 224)
    captured = {}
    m = loaded.model
    hooks = [m.dot_product_scoring.register_forward_hook(lambda mod, i, o: captured.update(logits=o)),
             m.detr_decoder.box_head.register_forward_hook(
                 lambda mod, i, o: captured.update(offsets=o) if o.dim() == 4 else None),
             m.detr_decoder.register_forward_hook(lambda mod, i, o: captured.update(presence=o.presence_logits))]
    with torch.no_grad():
        out = m(pixel_values=px.expand(2, -1, -1, -1), input_ids=ids, attention_mask=mask)
        res = pm(px, torch.tensor([0, 0]), ids, mask)
    for h in hooks:
        h.remove()
    last = mt._aux_outputs(captured, out.decoder_reference_boxes, include_last=True)[-1]
    torch.testing.assert_close(last["pred_boxes"], out.pred_boxes, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(last["pred_logits"], out.pred_logits)
    torch.testing.assert_close(last["presence_logits"], out.presence_logits)
    assert len(res["aux"]) == m.config.detr_decoder_config.num_layers - 1
    from model.losses import LossConfig, PairTarget, sam3_loss

    t = PairTarget(torch.tensor([[0.1, 0.1, 0.5, 0.5]]), torch.ones(1, 64, 64))
    neg = PairTarget(torch.zeros(0, 4), torch.zeros(0, 64, 64))
    losses = sam3_loss(res, [t, neg], LossConfig())
    assert losses["loss_aux"] > 0


def test_one_to_many_training_saves_its_nms_setting_and_aux_losses_run(shards, tmp_path):
    from model.presets import load_model

    cfg = _cfg(steps=2, checkpoint_every=0, aux_loss=True, loss={"queries_per_instance": 2})
    res = train(cfg, shards, tmp_path / "o2m")
    assert all(h["loss_aux"] > 0 and h["num_matched"] > 0 for h in res.history)
    assert load_model(res.model_dir).extra == {"nms_iou": 0.5}
    plain = train(_cfg(steps=1, checkpoint_every=0), shards, tmp_path / "o2o")
    assert load_model(plain.model_dir).extra == {}


def test_fresh_queries_start_spread_over_the_image():
    loaded = build_model(_cfg())
    dec = loaded.model.detr_decoder
    boxes = dec.reference_points.weight.sigmoid()
    centres = boxes[:, :2]
    assert torch.cdist(centres, centres).add(torch.eye(len(centres))).min() > 0.02  # no two alike
    assert centres.min() > 0 and centres.max() < 1 and centres.std(0).min() > 0.2  # the whole image
    assert torch.allclose(boxes[:, 2:], torch.full_like(boxes[:, 2:], 0.1))
    assert dec.query_embed.weight.std() > 0.5
    hf = build_model(_cfg(init="hf")).model.detr_decoder.reference_points.weight.sigmoid()
    assert (hf - 0.5).abs().max() < 0.1  # what HF's init gives: every query at the centre
