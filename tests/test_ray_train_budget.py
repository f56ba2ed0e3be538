"""Under Ray Train the time budget covers Ray and worker start-up: the driver sets a deadline and each
worker trains for what is left of it (no cluster is started here: Ray Train's entry points are faked)."""

import time

import pytest
import torch

from model import ray_train
from model.ray_train import worker_budget
from model.train import TrainConfig


def test_worker_budget_is_what_is_left_of_the_deadline():
    assert worker_budget(120, deadline=1000.0, now=930.0) == 70.0  # 50 s of start-up came off
    assert worker_budget(120, deadline=1000.0, now=800.0) == 120.0  # never more than the budget
    assert worker_budget(120, deadline=1000.0, now=1010.0) == 0.0  # past the deadline: no step
    assert worker_budget(None, deadline=None, now=5.0) is None  # no budget: steps only
    assert worker_budget(60, deadline=None, now=5.0) == 60  # an old driver without a deadline


def test_driver_passes_a_deadline_and_the_worker_trains_for_the_rest(monkeypatch, tmp_path):
    pytest.importorskip("ray.train.torch")
    import ray.train
    import ray.train.torch

    captured = {}

    class FakeTrainer:
        def __init__(self, loop, train_loop_config, **kw):
            captured["loop"], captured["config"] = loop, train_loop_config

        def fit(self):
            return type("R", (), {"metrics": {"step": 0}})()

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", FakeTrainer)
    monkeypatch.setattr(ray_train, "_init_ray", lambda *a: time.sleep(0.3))  # Ray start-up takes time
    before = time.time()
    ray_train.train_ray(TrainConfig(max_time_s=100, steps=5), [str(tmp_path / "s.tar")], tmp_path / "run",
                        num_workers=1)
    deadline = captured["config"]["deadline"]
    assert before + 100 <= deadline <= time.time() + 100  # set before Ray started

    # the worker side: the budget run_training gets is the time left until that deadline
    seen = {}
    ctx = type("Ctx", (), {"get_world_rank": lambda self: 0, "get_world_size": lambda self: 1})()
    monkeypatch.setattr(ray.train, "get_context", lambda: ctx)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(ray_train, "run_training", lambda cfg, *a, **kw: seen.setdefault("cfg", cfg))
    monkeypatch.setattr(ray_train, "time", type("Clock", (), {"time": staticmethod(lambda: 5000.0)}))
    threads = torch.get_num_threads()
    try:
        captured["loop"]({**captured["config"], "deadline": 5030.0})  # the worker starts 70 s late
    finally:
        torch.set_num_threads(threads)
    assert seen["cfg"].max_time_s == 30.0
