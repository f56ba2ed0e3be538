"""A campaign step running inside a Ray job joins that job's cluster (Ray sets RAY_ADDRESS there)."""

from __future__ import annotations


def test_ray_executor_joins_the_cluster_named_by_ray_address(ray_cluster, monkeypatch):
    import ray

    from engine.campaign.config import ExecutorSettings
    from engine.campaign.executors import RayExecutor

    ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.gcs)
    try:
        RayExecutor(ExecutorSettings(kind="ray"))  # no address in the config
        joined = ray.get_runtime_context().gcs_address  # reported with the node's own IP
        assert joined.rsplit(":", 1)[1] == ray_cluster.gcs.rsplit(":", 1)[1]
        assert all(node["Alive"] for node in ray.nodes())
    finally:
        ray.shutdown()
