"""Real services for tests (SeaweedFS S3, PostgreSQL), started by session fixtures, stopped by pid.

Fixtures:
- `seaweedfs` : the running `weed mini` handle (storage.testing_services.SeaweedFS: endpoint,
  access_key, secret_key, pid, `s3_config()`, `env()`), with bucket `sam3-test` created.
- `seaweedfs_s3` : a dict {endpoint, access_key, secret_key, region, bucket} for the same server.
- `postgres_url` : a SQLAlchemy URL of a fresh PostgreSQL server (postgresql+psycopg2://...).
The process-starting logic lives in storage/testing_services.py so benchmarks can reuse it.
"""

from __future__ import annotations

import pytest

from storage.testing_services import start_postgres, start_seaweedfs

TEST_BUCKET = "sam3-test"


@pytest.fixture(scope="session")
def seaweedfs():
    server = start_seaweedfs(buckets=(TEST_BUCKET,))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs_s3(seaweedfs):
    return {
        "endpoint": seaweedfs.endpoint,
        "access_key": seaweedfs.access_key,
        "secret_key": seaweedfs.secret_key,
        "region": seaweedfs.region,
        "bucket": TEST_BUCKET,
    }


@pytest.fixture(scope="session")
def postgres_url():
    server = start_postgres()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def object_store(request, tmp_path):
    """An ObjectStore rooted at a fresh place: a temp folder, or a unique prefix on SeaweedFS."""
    import uuid

    from storage.objectstore import ObjectStore

    if request.param == "local":
        return ObjectStore(root=str(tmp_path / "store"), fsync=False)
    server = request.getfixturevalue("seaweedfs")
    name = request.node.name.replace("[", "-").rstrip("]")
    root = f"s3://{TEST_BUCKET}/{name}-{uuid.uuid4().hex[:8]}"
    return ObjectStore(root=root, s3=server.s3_config(max_attempts=2))
