"""Learning is real: the tiny model's loss on shapes-world shards falls by at least half, quickly."""

import torch

from model.train import TrainConfig, train

STEPS = 40


def test_loss_halves_on_shapes_world(tmp_path):
    from engine.world.samples import generate_samples
    from storage.shards import write_shards

    torch.set_num_threads(2)
    shards = write_shards(generate_samples(24, seed=11, negatives_per_image=4), str(tmp_path / "shards"),
                          "train", max_samples=12)
    cfg = TrainConfig(
        steps=STEPS, lr=3e-3, warmup_steps=5, checkpoint_every=0, log_every=10, seed=0,
        sampling={"positives_per_image": 3, "negatives_per_image": 1, "hard_negatives_per_image": 1,
                  "images_per_batch": 1, "shuffle_buffer": 8},
    )
    result = train(cfg, shards, tmp_path / "run")
    losses = [h["loss"] for h in result.history]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert result.step == STEPS
    assert last <= 0.5 * first, f"loss {first:.2f} -> {last:.2f} in {STEPS} steps: {losses}"
