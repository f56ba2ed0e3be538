"""Named training recipes: TrainConfig field values known to work for a preset.

`TINY_RECIPE` is what makes the tiny preset learn within minutes on a CPU; the demo and
`bench/train_tiny.py` both start from it.
"""

TINY_RECIPE: dict = {
    "lr": 3e-3,
    "warmup_steps": 30,
    "weight_decay": 1e-4,
    "grad_clip": 1.0,
    "checkpoint_every": 200,
    "log_every": 25,
    "sampling": {"positives_per_image": 6, "negatives_per_image": 2, "hard_negatives_per_image": 2,
                 "images_per_batch": 2, "shuffle_buffer": 32},
    "loss": {"weight_presence": 10.0, "weight_semantic": 5.0, "mask_fg_balance": 0.5},
}
