"""The SQL state store on SQLite and on a real PostgreSQL server: CRUD, idempotency, safe claims."""

from __future__ import annotations

import threading

import pytest

from storage.state import StateError, StateStore


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    db = f"t_{request.node.name.replace('[', '_').replace(']', '').replace('-', '_').lower()}"
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
        c.execute(text(f'CREATE DATABASE "{db}"'))
    eng.dispose()
    return url.rsplit("/", 1)[0] + "/" + db


@pytest.fixture
def store(state_url):
    s = StateStore(state_url)
    s.upsert_campaign("c1", config={"phases": 3})
    s.upsert_phase("c1", 1, name="human verification", status="running")
    yield s
    s.close()


def test_campaigns_phases_units(store):
    c = store.upsert_campaign("c1", status="running")
    assert (c.name, c.status, c.config) == ("c1", "running", {"phases": 3})
    assert [x.name for x in store.list_campaigns()] == ["c1"]
    p = store.upsert_phase("c1", 1, status="done")
    assert p.started_at is not None and p.finished_at is not None and p.name == "human verification"
    store.upsert_phase("c1", 2)
    assert [ph.index for ph in store.list_phases("c1")] == [1, 2]
    for k in ("u0", "u1", "u2"):
        store.upsert_work_unit("c1", 1, "mask_proposal", k)
    u = store.upsert_work_unit("c1", 1, "mask_proposal", "u1", status="running")
    assert u.attempts == 1 and u.status == "running"
    done = store.mark_unit_done(
        "c1", 1, "mask_proposal", "u1", "s3://b/c1/phase-1/mp/part-u1.parquet"
    )
    assert done.status == "done" and done.marker_uri.endswith("part-u1.parquet")
    store.mark_unit_failed("c1", 1, "mask_proposal", "u2", "OOM")
    assert [u.unit_key for u in store.list_units("c1", 1, status="pending")] == ["u0"]
    assert (
        store.upsert_work_unit("c1", 1, "mask_proposal", "u1").status == "done"
    )  # upsert keeps state
    with pytest.raises(StateError, match="campaign 'nope' does not exist"):
        store.upsert_phase("nope", 1)
    with pytest.raises(StateError, match="no phase 7"):
        store.upsert_work_unit("c1", 7, "s", "u")
    with pytest.raises(StateError, match="status 'weird'"):
        store.upsert_work_unit("c1", 1, "s", "u", status="weird")


def test_task_queue_lifecycle(store):
    tasks = [
        {"task_type": "ev_check", "payload_ref": f"pair/{i}", "priority": i % 2} for i in range(5)
    ]
    assert store.enqueue_tasks("c1", 1, tasks) == 5
    assert store.enqueue_tasks("c1", 1, tasks) == 0  # idempotent
    again = store.enqueue_task("c1", 1, "ev_check", "pair/3")
    assert again.status == "queued" and again.priority == 1
    first = store.claim_next_task("alice")
    assert first.payload_ref == "pair/1" and first.assignee == "alice" and first.status == "claimed"
    with pytest.raises(StateError, match="cannot complete it as 'bob'"):
        store.complete_task(first.id, {"verdict": "accept"}, 3.5, assignee="bob")
    done = store.complete_task(
        first.id, {"verdict": "accept", "masks": [1, 2]}, 3.5, assignee="alice"
    )
    assert done.result == {"verdict": "accept", "masks": [1, 2]} and done.seconds_spent == 3.5
    with pytest.raises(StateError, match="is done"):
        store.complete_task(first.id, {}, 1.0)
    second = store.claim_next_task("bob")
    assert store.release_task(second.id).status == "queued"
    assert store.claim_next_task("carol", task_type="mv_check") is None
    assert store.task_counts("c1") == {"done": 1, "queued": 4}
    assert store.get_task(second.id).assignee is None


def test_model_registry(store):
    store.register_model("sam3-tiny", "1", "file:///m/1", {"cgF1": 0.3})
    store.register_model("sam3-tiny", "2", "file:///m/2", {"cgF1": 0.4}, parent="sam3-tiny:1")
    with pytest.raises(StateError, match="already registered"):
        store.register_model("sam3-tiny", "2", "file:///m/2b")
    assert store.promoted_model("sam3-tiny") is None
    store.promote_model("sam3-tiny", "1")
    m = store.promote_model("sam3-tiny", "2")
    assert m.promoted and m.parent == "sam3-tiny:1" and m.metrics == {"cgF1": 0.4}
    assert [(x.version, x.promoted) for x in store.list_models("sam3-tiny")] == [
        ("1", False),
        ("2", True),
    ]
    assert store.promoted_model("sam3-tiny").version == "2"
    with pytest.raises(StateError, match="sam3-tiny:9 is not registered"):
        store.promote_model("sam3-tiny", "9")


def test_concurrent_claims_never_share_a_task(store, state_url):
    n = 60
    store.enqueue_tasks(
        "c1", 1, [{"task_type": "mv_check", "payload_ref": f"m/{i}"} for i in range(n)]
    )
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        own = StateStore(state_url, create=False)  # its own engine and connection
        try:
            barrier.wait()
            while (t := own.claim_next_task(name)) is not None:
                claimed[name].append(t.id)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    print(f"claims: a={len(claimed['a'])} b={len(claimed['b'])}")
    a, b = set(claimed["a"]), set(claimed["b"])
    assert not (a & b), f"tasks handed to both: {sorted(a & b)}"
    assert len(a) + len(b) == n and len(claimed["a"]) == len(a) and len(claimed["b"]) == len(b)
    assert store.task_counts("c1") == {"claimed": n}


def test_plain_path_means_sqlite(tmp_path):
    s = StateStore(str(tmp_path / "sub" / "state.db"))
    assert s.dialect == "sqlite" and (tmp_path / "sub" / "state.db").exists()
    s.close()
