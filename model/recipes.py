"""Named training recipes: TrainConfig field values known to work for a preset.

- `TINY_RECIPE`: training or fine-tuning the tiny preset on a CPU (the demo's retrain, `bench/train_tiny.py`):
  SAM 3-style losses (no query loss on negative pairs, positives weighted up by focal alpha 0.75,
  presence and classification at the same weight, the semantic head trained on negatives too),
  auxiliary decoder losses, denoising queries, crowd regions out of the targets, and, for a fresh
  model, the locality / position priors of `model.init`.
- `TINY_BASE_RECIPE`: the architecture and schedule of the shipped base model
  (`engine.base_model`): TINY_RECIPE plus no dropout, 48 queries and 32x32 masks (the pixel decoder
  at half resolution: about 2x the steps per CPU-minute, measured in bench/README.md).
Every lever was measured in equal-time A/B runs (bench/README.md).
"""

TINY_RECIPE: dict = {
    "lr": 3e-3,
    "warmup_steps": 30,
    "weight_decay": 1e-4,
    "grad_clip": 1.0,
    "checkpoint_every": 200,
    "log_every": 25,
    "locality_prior": True,
    "position_std": 0.5,
    "aux_loss": True,
    "denoising": {"copies": 2, "box_noise": 0.4},
    "sampling": {"positives_per_image": 6, "negatives_per_image": 2, "hard_negatives_per_image": 2,
                 "images_per_batch": 2, "shuffle_buffer": 32, "drop_crowds": True},
    "loss": {"weight_presence": 2.0, "weight_cls": 2.0, "weight_semantic": 1.0, "semantic_on_negatives": True,
             "query_loss_on_negatives": False, "focal_alpha": 0.75, "mask_fg_balance": 0.5},
}

TINY_BASE_RECIPE: dict = {
    **TINY_RECIPE,
    "checkpoint_every": 1000,
    "log_every": 250,
    "keep_checkpoints": 2,
    "model_overrides": {
        "num_queries": 48,
        "detr_encoder_config.dropout": 0.0,
        "detr_decoder_config.dropout": 0.0,
        "vision_config.scale_factors": [2.0, 1.0, 0.5],
        "mask_decoder_config.num_upsampling_stages": 1,
    },
}
