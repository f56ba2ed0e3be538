"""The retrain's torch thread policy: fixed, from the environment, or tuned by step rate (model.thread_tuner);
the caller's thread count is restored and the published metrics say what was used."""

import pytest
import torch

from model.retrain import THREADS_ENV, retrain, thread_policy

CONFIG = {"checkpoint_every": 0, "warmup_steps": 1,
          "sampling": {"positives_per_image": 1, "negatives_per_image": 1, "hard_negatives_per_image": 0,
                       "images_per_batch": 1, "shuffle_buffer": 2}}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from engine.world.samples import generate_samples
    from storage.shards import write_shards

    out = tmp_path_factory.mktemp("shards")
    return write_shards(generate_samples(2, seed=7, negatives_per_image=2), str(out), "train")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_thread_policy(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert thread_policy(None, "cpu") == "auto"
    assert thread_policy(None, "cuda") is None  # a GPU: torch's CPU threads are left alone
    assert thread_policy(3, "cpu") == 3 and thread_policy("auto", "cuda") == "auto"
    monkeypatch.setenv(THREADS_ENV, "2")
    assert thread_policy(None, "cpu") == 2 and thread_policy(None, "cuda") == 2
    assert thread_policy(1, "cpu") == 1  # the argument wins over the environment
    for bad in ("0", "many", -1):
        with pytest.raises(ValueError, match="train threads"):
            thread_policy(bad, "cpu")


def test_retrain_auto_threads_are_tuned_recorded_and_restored(shards, tmp_path, one_thread, monkeypatch):
    from model.registry import ModelRegistry

    monkeypatch.delenv(THREADS_ENV, raising=False)
    seen = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real_set(n)))
    reg = ModelRegistry(str(tmp_path / "root"))
    rec, result = retrain(shards, "tiny", reg, steps=12, config={**CONFIG, "device": "cpu"})
    assert result.step == 12
    used = rec.metrics["train"]["threads"]
    assert used["choices"][0] == 1 and sum(used["steps"].values()) == 11  # the tuner ticked every step
    assert seen[0] == 1  # training started on one thread
    assert torch.get_num_threads() == 1  # the caller's count is back
    assert reg.metrics(rec.ref)["train"]["threads"] == used  # published with the model


def test_retrain_fixed_threads_from_the_environment(shards, tmp_path, one_thread, monkeypatch):
    from model.registry import ModelRegistry

    monkeypatch.setenv(THREADS_ENV, "2")
    seen = []
    monkeypatch.setattr("model.retrain.train",
                        lambda *a, **kw: (seen.append((torch.get_num_threads(), kw)), _real_train(*a, **kw))[1])
    rec, _ = retrain(shards, "tiny", ModelRegistry(str(tmp_path / "root")), steps=2, config=CONFIG)
    assert seen == [(2, {})]  # trained on 2 threads, no tuner hook
    assert rec.metrics["train"]["threads"] == {"threads": 2}
    assert torch.get_num_threads() == 1


def _real_train(*a, **kw):
    from model.train import train

    return train(*a, **kw)
