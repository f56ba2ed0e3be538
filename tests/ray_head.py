"""A real local Ray head for job-submission tests (session fixture `ray_head`), stopped by pid.

`ray start --head --block` with the venv's bin first on PATH (so job entrypoints find
`sam3-engine` and the venv's python), free ports on 127.0.0.1 and a short temp dir.
`ray_cluster` yields both addresses (`.dashboard` = the Jobs API `http://127.0.0.1:PORT`, `.gcs` =
`127.0.0.1:PORT` for `ray.init(address=...)`); `ray_head` is the dashboard address alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest


class RayHead(NamedTuple):
    dashboard: str
    gcs: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_jobs_api(address: str, proc: subprocess.Popen, log: Path, seconds: float = 120.0) -> None:
    """Until a probe job runs: the API answers before the head's job agent has registered."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray head exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            client = JobSubmissionClient(address)
            job = client.submit_job(entrypoint="true", metadata={"probe": "ray_head fixture"})
            while str(status := client.get_job_status(job)) not in ("SUCCEEDED", "FAILED", "STOPPED"):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if str(status) == "SUCCEEDED":
                return
            last = RuntimeError(f"probe job {job} ended {status}")
        except (OSError, RuntimeError, ConnectionError) as err:
            last = err
        time.sleep(0.5)
    raise RuntimeError(f"ray head at {address}: no job ran within {seconds}s (last: {last}); "
                       f"head log: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def ray_cluster():
    bin_dir = str(Path(sys.executable).parent)
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    port, dash = free_port(), free_port()
    # every port a head binds, chosen free: a second Ray on this machine (another test session)
    # holds the defaults (52365 agent, 10001 client, ...) and its agent would not start here
    ports = {flag: free_port() for flag in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
        "runtime-env-agent-port", "ray-client-server-port", "node-manager-port", "object-manager-port")}
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    log = Path(temp) / "head.log"
    cmd = [str(Path(bin_dir) / "ray"), "start", "--head", "--block", f"--port={port}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--temp-dir={temp}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats",
           *(f"--{flag}={value}" for flag, value in ports.items())]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        _wait_jobs_api(address, proc, log)
        yield RayHead(address, f"127.0.0.1:{port}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head(ray_cluster):
    return ray_cluster.dashboard
