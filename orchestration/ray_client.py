"""Ray Jobs SDK access for the operator and trigger: the dashboard address from an Airflow
connection, a client, and one status/log poll of a job (sync; the trigger runs it in a thread)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class RayJobError(RuntimeError):
    """A Ray job request that cannot be met; the message names the job / address and why."""


def address_from_connection(conn) -> str:
    """`http://host:port` of a Ray dashboard (Jobs API) from an Airflow connection.

    Accepted: `extra={"address": "http://..."}`; or host (+ port, default 8265; schema/conn_type
    http or https). `AIRFLOW_CONN_RAY_DEFAULT='http://127.0.0.1:8265'` gives host and port.
    """
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("address"):
        return str(extra["address"]).rstrip("/")
    host = (conn.host or "").strip()
    if not host:
        raise RayJobError(f"Airflow connection {conn.conn_id!r} has no host (or extra 'address') "
                          "for the Ray dashboard")
    if "://" in host:
        return host.rstrip("/")
    scheme = "https" if "https" in (conn.schema or "", conn.conn_type or "") else "http"
    return f"{scheme}://{host}:{conn.port or 8265}"


def resolve_address(conn_id: str) -> str:
    """The Ray dashboard address of Airflow connection `conn_id` (env var, secrets backend or DB)."""
    from airflow.sdk import Connection

    return address_from_connection(Connection.get(conn_id))


@functools.lru_cache(maxsize=16)
def client(address: str):
    """A Jobs API client for `address` (cached: constructing one costs two HTTP round trips)."""
    from ray.job_submission import JobSubmissionClient

    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RayJobError(f"Ray dashboard address {address!r} must look like http://host:8265")
    try:
        return JobSubmissionClient(address)
    except Exception as err:  # connection refused, version mismatch, ...
        raise RayJobError(f"cannot reach the Ray Jobs API at {address}: {err}") from err


@dataclass
class Poll:
    """One look at a job: its status, its error message, and the log text after `offset`."""

    status: str
    message: str
    new_logs: str
    offset: int

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def poll(address: str, job_id: str, offset: int) -> Poll:
    c = client(address)
    info = c.get_job_info(job_id)
    logs = c.get_job_logs(job_id)
    return Poll(str(info.status), info.message or "", logs[offset:], len(logs))


def stop(address: str, job_id: str) -> bool:
    """Ask Ray to stop the job (SIGTERM then SIGKILL); True if it was still running."""
    return bool(client(address).stop_job(job_id))


def wait_stopped(address: str, job_id: str, seconds: float = 30.0) -> str:
    """Stop the job and wait until Ray reports a terminal status; returns that status."""
    import time

    c = client(address)
    c.stop_job(job_id)
    deadline = time.monotonic() + seconds
    status = str(c.get_job_status(job_id))
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(c.get_job_status(job_id))
    return status
