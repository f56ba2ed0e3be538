"""Priors of a fresh model (model.init) and the SAM 3-style loss/data switches they go with."""

import torch

from model.init import sincos_table
from model.losses import LossConfig, PairTarget, sam3_loss
from model.train import TrainConfig, build_model


def _rpb(decoder, box_cxcywh, side=16):
    shape = (torch.tensor(side), torch.tensor(side))
    return decoder._get_rpb_matrix(torch.tensor([[box_cxcywh]]), shape)[0, :, 0].reshape(-1, side, side)


def test_locality_prior_keeps_attention_inside_the_reference_box():
    dec = build_model(TrainConfig(locality_prior=True)).model.detr_decoder
    bias = _rpb(dec, [0.5, 0.5, 0.25, 0.25])  # box over cells 6..9 of 16
    inside, outside = bias[:, 7:9, 7:9], bias[:, 0:2, 0:2]
    for head, strength in enumerate((10.0, 10.0, 3.0)):
        assert inside[head].abs().max() < 0.5, f"head {head} penalises its own box"
        assert outside[head].max() < -0.5 * strength, f"head {head} does not focus: {outside[head].max()}"
    assert bias[3].abs().max() < 0.5  # the last head stays global
    plain = _rpb(build_model(TrainConfig()).model.detr_decoder, [0.5, 0.5, 0.25, 0.25])
    assert (plain[:, 7:9, 7:9].mean() - plain[:, 0:2, 0:2].mean()).abs() < 2.0  # no prior without it


def test_position_table_tells_patches_apart_by_distance():
    table = sincos_table(16, 32)
    assert table.shape == (256, 32)
    assert torch.cdist(table, table).add(torch.eye(256) * 10).min() > 0.1  # every patch distinct
    sim = table @ table[0]  # patch (0, 0) against the others along the first row
    assert sim[0] > sim[1] > sim[3] > sim[8]
    pos = build_model(TrainConfig(position_std=0.5)).model.vision_encoder.backbone.embeddings.position_embeddings
    pos = pos.detach()
    assert abs(float(pos.std()) - 0.5) < 1e-3
    assert torch.allclose(pos[0] / pos[0].std(), table / table.std(), atol=1e-5)


def _outputs(b=2, q=4, side=8):
    torch.manual_seed(0)
    return {"pred_logits": torch.randn(b, q, requires_grad=True), "pred_boxes": torch.rand(b, q, 4).sort(-1).values,
            "pred_masks": torch.randn(b, q, side, side), "presence_logits": torch.zeros(b, 1),
            "semantic_seg": None}


def test_query_loss_on_negatives_can_be_left_to_presence():
    negatives = [PairTarget(torch.zeros(0, 4), torch.zeros(0, 8, 8))] * 2
    on = sam3_loss(_outputs(), negatives, LossConfig())
    off = sam3_loss(_outputs(), negatives, LossConfig(query_loss_on_negatives=False))
    assert on["loss_cls"] > 0 and off["loss_cls"] == 0
    assert off["loss_presence"] == on["loss_presence"] > 0
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:5, 2:5] = 1
    mixed = [PairTarget(torch.tensor([[0.25, 0.25, 0.625, 0.625]]), mask), negatives[0]]
    off_mixed = sam3_loss(_outputs(), mixed, LossConfig(query_loss_on_negatives=False))
    assert off_mixed["loss_cls"] > 0  # the positive row still trains its queries


def test_crowds_can_be_dropped_from_targets():
    from model.data import pair_target
    from storage.records import Instance, Pair

    def inst(crowd, x):
        m = torch.zeros(4, 4, dtype=torch.uint8)
        m[:, x] = 1
        from pycocotools import mask as mask_utils
        import numpy as np

        rle = mask_utils.encode(np.asfortranarray(m.numpy()))
        return Instance(rle={"size": [4, 4], "counts": rle["counts"].decode()}, bbox=[x, 0, 1, 4], iscrowd=crowd)

    pair = Pair(media_id="m", phrase="red shape", label="positive", instances=[inst(False, 0), inst(True, 2)])
    assert pair_target(pair, 4, 4, 4, 64).num == 2
    kept = pair_target(pair, 4, 4, 4, 64, drop_crowds=True)
    assert kept.num == 1 and kept.masks[0, :, 0].all() and not kept.masks[0, :, 2].any()
    crowd_only = Pair(media_id="m", phrase="red shape", label="positive", instances=[inst(True, 1)])
    assert pair_target(crowd_only, 4, 4, 4, 64, drop_crowds=True).num == 0  # scored as a negative
