"""RayJobOperator / RayJobTrigger against a real local Ray head (the `ray_head` session fixture).

The operator runs with a minimal task-instance stand-in (ids, try number, XCom in a dict): the
parts under test are the Ray side (submit, poll, logs, stop) and the operator/trigger protocol
(defer -> event -> resume). The DAG tests run it inside Airflow for real (dag.test).
"""

# ruff: noqa: I001  (tests.airflow_env must be imported before airflow)
from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time

import tests.airflow_env  # noqa: F401  (Airflow settings before airflow is imported)

import pytest

from airflow.sdk.exceptions import TaskDeferralTimeout, TaskDeferred

from orchestration import ray_client
from orchestration.ray_jobs import (RayJobFailed, RayJobOperator, RayJobTimeout, RayJobTrigger,
                                    last_json_line, submission_id_for)

PY = sys.executable


def py(code: str) -> str:
    """A job entrypoint running `code` with the venv's python."""
    return f"{shlex.quote(PY)} -c {shlex.quote(code)}"


class FakeTI:
    def __init__(self, task_id: str, run_id: str, try_number: int = 1):
        self.dag_id, self.task_id, self.run_id = "ray_test_dag", task_id, run_id
        self.map_index, self.try_number = -1, try_number
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value

    def xcom_pull(self, task_ids=None, key=None, map_indexes=None):
        return self.xcom.get(key)


@pytest.fixture(scope="module")
def conn(ray_head):
    os.environ["AIRFLOW_CONN_RAY_TEST"] = ray_head
    yield "ray_test"
    os.environ.pop("AIRFLOW_CONN_RAY_TEST", None)


def first_event(trigger: RayJobTrigger) -> dict:
    async def go():
        return await anext(trigger.run())
    return asyncio.run(go()).payload


def drive(op: RayJobOperator, ctx: dict) -> tuple[object, int]:
    """Run the operator the way Airflow does: execute, then (trigger event -> execute_complete)*."""
    events = 0
    try:
        return op.execute(ctx), events
    except TaskDeferred as d:
        deferred = d
    while True:
        _, kwargs = deferred.trigger.serialize()
        trigger = RayJobTrigger(**kwargs)  # what the triggerer rebuilds from the serialised form
        payload = first_event(trigger)
        events += 1
        try:
            return op.execute_complete(ctx, payload), events
        except TaskDeferred as d:
            deferred = d


def status(address: str, job_id: str) -> str:
    return str(ray_client.client(address).get_job_status(job_id))


def wait_status(address: str, job_id: str, want: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while (s := status(address, job_id)) != want and time.monotonic() < deadline:
        time.sleep(0.3)
    return s


def test_success_streams_logs_in_batches_and_returns_last_json_line(conn, ray_head, capsys):
    code = ("import time; print('hello from ray', flush=True); time.sleep(3); "
            "print('second line', flush=True); print('{\"units\": 3}')")
    op = RayJobOperator(task_id="ok", conn_id=conn, entrypoint=py(code),
                        poll_seconds=0.3, log_batch_seconds=0.5)
    ctx = {"ti": FakeTI("ok", "run-success")}
    result, events = drive(op, ctx)
    assert result["status"] == "SUCCEEDED" and result["result"] == {"units": 3}
    job_id = ctx["ti"].xcom["ray_job"]["job_id"]
    assert result["job_id"] == job_id == submission_id_for("ray_test_dag", "ok", "run-success", -1, 1)
    text = capsys.readouterr().out  # Airflow's task logger (structlog) writes here outside a worker
    assert f"[ray {job_id}] hello from ray" in text and f"[ray {job_id}] second line" in text
    assert text.index("hello from ray") < text.index("second line")
    assert events >= 2, "logs arrive while the job runs (a batch before the end), not only at the end"


def test_failed_job_fails_the_task_with_rays_error(conn):
    op = RayJobOperator(task_id="bad", conn_id=conn, poll_seconds=0.3,
                        entrypoint=py("import sys; print('about to fail'); sys.exit(3)"))
    with pytest.raises(RayJobFailed, match="FAILED.*exit code 3"):
        drive(op, {"ti": FakeTI("bad", "run-fail")})


def test_rerun_of_the_same_try_reattaches_instead_of_submitting_twice(conn, ray_head):
    code = "import time; time.sleep(1); print('{\"n\": 1}')"
    ctx = {"ti": FakeTI("once", "run-reattach")}
    first = RayJobOperator(task_id="once", conn_id=conn, entrypoint=py(code), poll_seconds=0.3)
    with pytest.raises(TaskDeferred):
        first.execute(ctx)
    again = RayJobOperator(task_id="once", conn_id=conn, entrypoint=py(code), poll_seconds=0.3)
    result, _ = drive(again, ctx)  # a restarted worker runs execute() again for the same try
    assert result["result"] == {"n": 1}
    ids = [j.submission_id for j in ray_client.client(ray_head).list_jobs()]
    assert ids.count(result["job_id"]) == 1


def test_killing_the_task_stops_the_job(conn, ray_head):
    op = RayJobOperator(task_id="kill", conn_id=conn, entrypoint=py("import time; time.sleep(120)"))
    ctx = {"ti": FakeTI("kill", "run-kill")}
    with pytest.raises(TaskDeferred):
        op.execute(ctx)
    job_id = ctx["ti"].xcom["ray_job"]["job_id"]
    assert wait_status(ray_head, job_id, "RUNNING") == "RUNNING"
    op.on_kill()  # the worker was told to kill the task
    assert wait_status(ray_head, job_id, "STOPPED") == "STOPPED"


def test_killing_the_deferred_task_stops_the_job_from_the_trigger(conn, ray_head):
    client = ray_client.client(ray_head)
    job_id = client.submit_job(entrypoint=py("import time; time.sleep(120)"))
    trigger = RayJobTrigger(ray_head, job_id, poll_seconds=0.3, log_batch_seconds=3600)

    async def go():
        task = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(2)
        assert not task.done()
        await trigger.on_kill()  # the triggerer's hook when a user kills a deferred task
        return (await asyncio.wait_for(task, 60)).payload

    event = asyncio.run(go())
    assert event["status"] == "STOPPED"
    assert status(ray_head, job_id) == "STOPPED"


def test_timeout_stops_the_job_and_fails_the_task(conn, ray_head):
    op = RayJobOperator(task_id="slow", conn_id=conn, job_timeout=3, poll_seconds=0.3,
                        entrypoint=py("import time; print('started', flush=True); time.sleep(120)"))
    ctx = {"ti": FakeTI("slow", "run-timeout")}
    t0 = time.monotonic()
    with pytest.raises(RayJobTimeout, match="job_timeout=3s"):
        drive(op, ctx)
    assert time.monotonic() - t0 < 60
    assert status(ray_head, ctx["ti"].xcom["ray_job"]["job_id"]) == "STOPPED"


def test_airflow_trigger_timeout_backstop_stops_the_job(conn, ray_head):
    op = RayJobOperator(task_id="backstop", conn_id=conn, entrypoint=py("import time; time.sleep(120)"))
    ctx = {"ti": FakeTI("backstop", "run-backstop")}
    with pytest.raises(TaskDeferred):
        op.execute(ctx)
    job_id = ctx["ti"].xcom["ray_job"]["job_id"]
    with pytest.raises(TaskDeferralTimeout):
        op.resume_execution("__fail__", {"error": "Trigger timeout"}, ctx)
    assert status(ray_head, job_id) == "STOPPED"


def test_an_unreachable_jobs_api_fails_the_task_after_retries():
    from tests.ray_head import free_port

    trigger = RayJobTrigger(f"http://127.0.0.1:{free_port()}", "airflow-x-t1", poll_seconds=0.05)
    trigger.max_poll_errors = 3
    event = first_event(trigger)
    assert event["status"] == "UNREACHABLE" and "3 polls in a row failed" in event["message"]
    op = RayJobOperator(task_id="x", entrypoint="true")
    with pytest.raises(RayJobFailed, match="ended UNREACHABLE.*cannot reach the Ray Jobs API"):
        op.execute_complete({"ti": FakeTI("x", "r")}, event)


def test_submission_is_retried_while_the_head_has_no_job_agent(monkeypatch):
    from orchestration import ray_jobs

    class Head:
        calls = 0

        def submit_job(self, **kwargs):
            Head.calls += 1
            if Head.calls < 3:
                raise RuntimeError("Request failed with status code 500: No available agent to submit job, "
                                   "please try again later..")

    monkeypatch.setattr(ray_jobs.time, "sleep", lambda s: None)
    op = RayJobOperator(task_id="x", entrypoint="true")
    op._submit(Head(), "airflow-x-t1", {})
    assert Head.calls == 3

    class Broken:
        def submit_job(self, **kwargs):
            raise RuntimeError("Request failed with status code 400: bad runtime_env")

    with pytest.raises(RuntimeError, match="bad runtime_env"):
        op._submit(Broken(), "airflow-x-t1", {})


def test_addresses_and_bad_input():
    from airflow.sdk import Connection

    assert ray_client.address_from_connection(
        Connection(conn_id="a", conn_type="http", host="ray-head", port=8265)) == "http://ray-head:8265"
    assert ray_client.address_from_connection(
        Connection(conn_id="b", conn_type="http", host="ray-head")) == "http://ray-head:8265"
    assert ray_client.address_from_connection(
        Connection(conn_id="c", conn_type="generic", extra='{"address": "https://ray.example:443/"}')
    ) == "https://ray.example:443"
    with pytest.raises(ray_client.RayJobError, match="'empty' has no host"):
        ray_client.address_from_connection(Connection(conn_id="empty", conn_type="http"))
    with pytest.raises(ray_client.RayJobError, match="'ray-head:8265' must look like"):
        ray_client.client("ray-head:8265")
    with pytest.raises(ValueError, match="entrypoint is empty"):
        RayJobOperator(task_id="x", entrypoint=" ")
    with pytest.raises(ValueError, match="job_timeout must be positive"):
        RayJobOperator(task_id="x", entrypoint="true", job_timeout=0)
    assert last_json_line('log\n{"a": 1}\n\n') == {"a": 1}
    assert last_json_line('{"a": 1}\nnot json') is None
    assert submission_id_for("d/ag", "t id", "manual__2026", 2, 3).startswith("airflow-d-ag-t-id-")
