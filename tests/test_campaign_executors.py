"""The Ray Data executor (predictor and verifiers as actor pools, routing and writes as tasks) writes
exactly what the inline executor writes for the same seed."""

import os
import tempfile

import pytest

from engine.campaign import steps
from engine.campaign.exports import final_pairs
from engine.campaign.steps import open_campaign
from tests.campaign_support import read_text, write_config


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="rx", dir="/tmp"))
    yield
    ray.shutdown()


def test_inline_and_ray_exports_are_identical(tmp_path, ray_cluster):
    runs = {}
    for kind in ("inline", "ray"):
        path = write_config(tmp_path / kind, name="same", verifiers={"embedder": "hashing"},
                            executor={"kind": kind, "predictor_actors": 1, "verifier_actors": 1})
        runs[kind] = (path, steps.run_campaign(str(path)))
    for k in (1, 2):
        docs = {kind: read_text(r["phases"][k]["consolidate"]["export"])
                for kind, (_, r) in runs.items()}
        assert docs["inline"] == docs["ray"], f"phase {k} SA-Co exports differ"
        pairs = {kind: [p.model_dump() for p in final_pairs(open_campaign(str(path)).layout, k, ["u00000", "u00001"])]
                 for kind, (path, _) in runs.items()}
        assert pairs["inline"] == pairs["ray"] and pairs["inline"]
    routes = runs["ray"][1]["phases"][2]["annotate"]["routes"]
    assert sum(routes.values()) == runs["ray"][1]["phases"][2]["plan"]["pairs"]
    c = open_campaign(str(runs["ray"][0]))
    assert c.cfg.executor.kind == "ray"
    assert [u.status for u in c.state.list_units("same", 2, "annotate")] == ["done", "done"]
