"""Ray Train: the training loop under TorchTrainer with 2 CPU workers (gloo), reaching a checkpoint."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_two_cpu_workers_train_and_checkpoint(ray_cluster, tmp_path):
    from engine.world.samples import generate_samples
    from model.ray_train import train_ray
    from model.train import TrainConfig, latest_checkpoint
    from storage.shards import write_shards

    shards = write_shards(generate_samples(4, seed=5, negatives_per_image=4), str(tmp_path / "shards"),
                          "train", max_samples=2)
    cfg = TrainConfig(steps=3, checkpoint_every=2, log_every=1, warmup_steps=1,
                      sampling={"positives_per_image": 2, "negatives_per_image": 1, "hard_negatives_per_image": 1,
                                "images_per_batch": 1, "shuffle_buffer": 2})
    result = train_ray(cfg, shards, tmp_path / "run", num_workers=2)
    assert result.step == 3
    assert latest_checkpoint(tmp_path / "run").name == "step-00000003"
    assert result.model_dir and Path(result.model_dir, "config.json").is_file()
    # both workers trained (rank 0 logs history; the loss is finite)
    assert [h["step"] for h in result.history] == [1, 2, 3]
    assert all(h["loss"] == h["loss"] for h in result.history)
