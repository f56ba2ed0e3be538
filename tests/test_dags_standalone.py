"""Smoke test of the real deployment path: `airflow standalone` (API server, scheduler, DAG
processor, triggerer) parses dags/, a DAG run of sam3_retrain is triggered over the Airflow 3 REST
API (JWT from /auth/token with the generated admin password) and succeeds. Stopped with SIGINT."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.airflow_env import DAGS_FOLDER
from tests.ray_head import free_port


def call(method: str, url: str, body: dict | None = None, token: str | None = None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def wait_for(what: str, fn, seconds: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited ({proc.returncode}): {log.read_text()[-4000:]}")
        try:
            value = fn()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError) as err:
            last = err
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {seconds}s (last: {last}); log tail: {log.read_text()[-4000:]}")


@pytest.fixture
def standalone():
    home = Path(tempfile.mkdtemp(prefix="af-standalone-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # the log servers' default ports (8793/8794) may be taken by another Airflow on this machine
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    log = home / "standalone.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    try:
        yield {"base": base, "home": home, "proc": proc, "log": log}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # standalone stops its components on SIGINT
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:
            os.killpg(proc.pid, 0)
            leftovers = True
        except ProcessLookupError:
            leftovers = False
        if leftovers:  # children that outlived SIGINT (our own session only)
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_standalone_runs_a_dag_triggered_over_the_rest_api(standalone, tmp_path):
    from engine.cli.world import generate, write_world_shards

    base, proc, log, home = standalone["base"], standalone["proc"], standalone["log"], standalone["home"]
    shards = write_world_shards(str(tmp_path / "shards"), 2, seed=1, negatives_per_image=2, max_samples=2)
    gold = generate(str(tmp_path / "gold"), 2, seed=2, negatives_per_image=2, progress=False)["gold"]

    wait_for("API server", lambda: call("GET", f"{base}/api/v2/monitor/health"), 180, proc, log)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    users = wait_for("admin password file", lambda: json.loads(passwords.read_text()), 60, proc, log)
    token = call("POST", f"{base}/auth/token", {"username": "admin", "password": users["admin"]})["access_token"]
    wait_for("sam3_retrain parsed", lambda: call("GET", f"{base}/api/v2/dags/sam3_retrain", token=token), 180,
             proc, log)
    conf = {"shards": shards, "gold": gold, "registry_root": str(tmp_path / "registry"), "model_name": "smoke",
            "steps": 2}
    run = call("POST", f"{base}/api/v2/dags/sam3_retrain/dagRuns", {"logical_date": None, "conf": conf}, token)
    url = f"{base}/api/v2/dags/sam3_retrain/dagRuns/{run['dag_run_id']}"

    def finished():
        state = call("GET", url, token=token)["state"]
        return state if state in ("success", "failed") else None

    assert wait_for("the DAG run", finished, 420, proc, log) == "success", log.read_text()[-4000:]
    tis = call("GET", f"{url}/taskInstances", token=token)["task_instances"]
    assert {t["task_id"]: t["state"] for t in tis} == {"retrain": "success", "evaluate": "success",
                                                       "promote": "success"}
    assert (tmp_path / "registry" / "models" / "smoke").is_dir()
