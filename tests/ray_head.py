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


def _wait_jobs_api(address: str, proc: subprocess.Popen, log: Path, seconds: float = 90.0) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray head exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"ray head: Jobs API at {address} not up after {seconds}s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def ray_cluster():
    bin_dir = str(Path(sys.executable).parent)
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    port, dash = free_port(), free_port()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    log = Path(temp) / "head.log"
    cmd = [str(Path(bin_dir) / "ray"), "start", "--head", "--block", f"--port={port}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--temp-dir={temp}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats"]
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
