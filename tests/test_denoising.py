"""Denoising queries: a training-only decoder pass from jittered GT boxes (model.denoising)."""

import torch

from model.denoising import DenoisingConfig, noised_boxes
from model.losses import PairTarget
from model.pair_model import Sam3PairModel
from model.train import TrainConfig, build_model


def _target(boxes):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.zeros(len(boxes), 64, 64)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        masks[i, int(y0 * 64):int(y1 * 64), int(x0 * 64):int(x1 * 64)] = 1
    return PairTarget(boxes, masks)


def test_noised_boxes_stay_near_their_instance():
    targets = [_target([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.7]]), _target([]), _target([[0.2, 0.6, 0.4, 0.8]])]
    gen = torch.Generator().manual_seed(0)
    ref, valid, index = noised_boxes(targets, DenoisingConfig(copies=3, box_noise=0.4), gen)
    assert ref.shape == (3, 6, 4) and valid.sum(1).tolist() == [6, 0, 3]
    for r, t in enumerate(targets):
        for q in valid[r].nonzero().flatten().tolist():
            x0, y0, x1, y1 = t.boxes[index[r, q]].tolist()
            cx, cy, w, h = ref[r, q].tolist()
            assert abs(cx - (x0 + x1) / 2) <= 0.2 * (x1 - x0) + 1e-6  # centre within lambda * w / 2
            assert 0.6 * (x1 - x0) - 1e-6 <= w <= 1.4 * (x1 - x0) + 1e-6
    exact, _, _ = noised_boxes(targets[:1], DenoisingConfig(copies=1, box_noise=0.0))
    assert torch.allclose(exact[0, 0], torch.tensor([0.2, 0.2, 0.2, 0.2]))


def test_denoising_pass_trains_the_decoder_and_leaves_inference_alone():
    from model.denoising import denoising_loss
    from model.losses import LossConfig
    from model.preprocess import tokenize

    loaded = build_model(TrainConfig(locality_prior=True))
    keys = set(loaded.model.state_dict())
    ids, mask = tokenize(loaded.tokenizer, ["red circle", "blue square"], 32)
    targets = [_target([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.7]]), _target([])]
    pm = Sam3PairModel(loaded.model, denoising=DenoisingConfig(copies=2)).train()
    out = pm(torch.randn(1, 3, 224, 224), torch.tensor([0, 0]), ids, mask, targets)
    dn = out["dn"]
    layers = loaded.model.config.detr_decoder_config.num_layers
    assert dn["pred_boxes"].shape == (layers, 2, 4, 4) and dn["pred_masks"].shape[:2] == (2, 4)
    losses = denoising_loss(dn, targets, LossConfig(), 128)
    losses["loss_dn"].backward()
    layer = loaded.model.detr_decoder.layers[0]
    assert layer.vision_cross_attn.q_proj.weight.grad.abs().sum() > 0
    assert loaded.model.mask_decoder.mask_embedder.layers[0].weight.grad.abs().sum() > 0
    assert set(loaded.model.state_dict()) == keys  # no new parameter: still a plain Sam3Model
    pm.eval()
    assert "dn" not in pm(torch.randn(1, 3, 224, 224), torch.tensor([0, 0]), ids, mask, targets)
