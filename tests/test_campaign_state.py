"""The campaign state store: SQLite under the storage root by default, PostgreSQL by URL; a human-only
phase and a hybrid phase run the same on both (units, human task queue, model registry index)."""

import uuid

from sqlalchemy import create_engine, text

from engine.campaign import steps
from engine.campaign.config import load_config
from engine.campaign.steps import open_campaign
from tests.campaign_support import write_config


def test_default_state_store_is_sqlite_under_the_root(tmp_path):
    path = write_config(tmp_path, name="lite", phases=[{"index": 1, "mode": "human", "images": 2, "per_unit": 2}])
    cfg = load_config(str(path))
    assert cfg.state == f"sqlite:///{tmp_path / 'root' / 'state.db'}"
    out = steps.run_campaign(str(path))
    assert (tmp_path / "root" / "state.db").is_file()
    c = open_campaign(str(path))
    assert [p.status for p in c.state.list_phases("lite")] == ["done"]
    assert c.state.get_campaign("lite").status == "done"
    assert out["phases"][1]["await_humans"]["tasks"] == c.desk.counts(1)


def test_campaign_on_postgresql(tmp_path, postgres_url):
    db = f"campaign_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {db}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{db}"
    path = write_config(tmp_path, name="pg", state_url=url, verifiers={"embedder": "hashing"})
    out = steps.run_campaign(str(path))
    assert not (tmp_path / "root" / "state.db").exists()
    c = open_campaign(str(path))
    assert c.state.dialect == "postgresql"
    assert [u.status for u in c.state.list_units("pg", 2, "consolidate")] == ["done", "done"]
    assert c.desk.counts(1).get("done", 0) > 0
    assert [m.version for m in c.state.list_models("tiny-model")] == ["v0001"]
    assert out["phases"][2]["consolidate"]["pairs"] == out["phases"][2]["plan"]["pairs"]
