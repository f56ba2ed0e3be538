"""Our Ray-job operator and its deferrable trigger (the upstream Airflow-Ray provider is deprecated).

    RayJobOperator(task_id="annotate", conn_id="ray_default",
                   entrypoint="sam3-engine campaign step annotate s3://.../campaign.yaml --phase 1",
                   job_timeout=timedelta(hours=6))

- `execute` resolves the Ray dashboard address from the Airflow connection, submits the entrypoint
  through the Ray Jobs SDK under a deterministic submission id (a retry gets a new one; a worker that
  restarts the same try re-attaches instead of submitting twice), records it in XCom (`ray_job`), and
  defers to `RayJobTrigger`.
- `RayJobTrigger` polls the job in the triggerer. It fires one event per batch of new log text
  (at most every `log_batch_seconds`), or when the job ends, or when the job's deadline passes (it
  stops the job first). The operator writes each batch into the task log and defers again.
- On success the task returns `{"job_id", "status", "result"}`; `result` is the JSON object on the
  job's last stdout line (our step CLIs print their summary there), else None.
- A FAILED or STOPPED job fails the task with Ray's own message. A timeout stops the job and fails
  the task (`RayJobTimeout`). Killing the task stops the job: `on_kill` on the worker,
  `RayJobTrigger.on_kill` while deferred, and Airflow's own trigger timeout (`__fail__`) too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from orchestration import ray_client

XCOM_JOB_KEY = "ray_job"
TRIGGER_FAIL = "__fail__"


class RayJobFailed(AirflowException):
    """The Ray job ended FAILED or STOPPED; the message carries Ray's reason."""


class RayJobTimeout(AirflowException):
    """The Ray job ran past the operator's `job_timeout` and was stopped."""


def _seconds(value: timedelta | float | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"job_timeout must be positive, got {value!r}")
    return seconds


def submission_id_for(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> str:
    """A Ray submission id unique per task try and stable across re-attaches of that try."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{dag_id}-{task_id}")[:80].strip("-")
    run = hashlib.sha1(run_id.encode()).hexdigest()[:10]
    suffix = f"-m{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"airflow-{slug}-{run}{suffix}-t{try_number}"


def last_json_line(logs: str) -> dict | None:
    """The JSON object on the last non-empty line of a job's output, if there is one."""
    for line in reversed(logs.splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


class RayJobTrigger(BaseTrigger):
    """Poll one Ray job; fire on new logs (batched), on its end, or past its deadline (stopping it).

    A failed poll (dashboard restarting, network blip) is retried; after `max_poll_errors` failures
    in a row the trigger fires `UNREACHABLE` and the task fails without touching the job.
    """

    max_poll_errors = 10

    def __init__(self, address: str, job_id: str, offset: int = 0, poll_seconds: float = 2.0,
                 log_batch_seconds: float = 30.0, deadline: float | None = None):
        super().__init__()
        self.address = address
        self.job_id = job_id
        self.offset = offset
        self.poll_seconds = poll_seconds
        self.log_batch_seconds = log_batch_seconds
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"address": self.address, "job_id": self.job_id, "offset": self.offset,
                 "poll_seconds": self.poll_seconds, "log_batch_seconds": self.log_batch_seconds,
                 "deadline": self.deadline})

    def _event(self, status: str, logs: str, offset: int, message: str = "") -> TriggerEvent:
        return TriggerEvent({"status": status, "job_id": self.job_id, "address": self.address,
                             "message": message, "logs": logs, "offset": offset,
                             "deadline": self.deadline})

    async def run(self):
        started = time.monotonic()
        logs, offset, errors = "", self.offset, 0
        while True:
            try:
                p = await asyncio.to_thread(ray_client.poll, self.address, self.job_id, offset)
            except Exception as err:  # noqa: BLE001 - any failure to reach the Jobs API
                errors += 1
                if errors >= self.max_poll_errors:
                    yield self._event("UNREACHABLE", logs, offset,
                                      f"{errors} polls in a row failed, last: {type(err).__name__}: {err}")
                    return
                self.log.warning("polling Ray job %s at %s failed (%s/%s): %s", self.job_id, self.address,
                                 errors, self.max_poll_errors, err)
                await asyncio.sleep(self.poll_seconds)
                continue
            errors = 0
            logs, offset = logs + p.new_logs, p.offset
            if p.terminal:
                yield self._event(p.status, logs, offset, p.message)
                return
            if self.deadline is not None and time.time() >= self.deadline:
                final = await asyncio.to_thread(ray_client.wait_stopped, self.address, self.job_id)
                p = await asyncio.to_thread(ray_client.poll, self.address, self.job_id, offset)
                yield self._event("TIMEOUT", logs + p.new_logs, p.offset,
                                  f"job ran past its deadline and was stopped (Ray status {final})")
                return
            if logs and time.monotonic() - started >= self.log_batch_seconds:
                yield self._event(p.status, logs, offset, p.message)
                return
            await asyncio.sleep(self.poll_seconds)

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed / clear): stop the Ray job."""
        await asyncio.to_thread(ray_client.stop, self.address, self.job_id)


class RayJobOperator(BaseOperator):
    """Run a shell entrypoint as a Ray job on the cluster of Airflow connection `conn_id`."""

    template_fields = ("entrypoint", "conn_id", "runtime_env", "submission_id", "job_metadata")
    ui_color = "#e8f0fe"
    submit_retry_seconds = 120.0

    def __init__(self, *, entrypoint: str, conn_id: str = "ray_default", runtime_env: dict | None = None,
                 submission_id: str | None = None, job_metadata: dict | None = None,
                 entrypoint_num_cpus: float | None = None, entrypoint_num_gpus: float | None = None,
                 entrypoint_memory: int | None = None, entrypoint_resources: dict | None = None,
                 job_timeout: timedelta | float | None = None, poll_seconds: float = 2.0,
                 log_batch_seconds: float = 30.0, **kwargs):
        super().__init__(**kwargs)
        if not entrypoint or not str(entrypoint).strip():
            raise ValueError(f"RayJobOperator {kwargs.get('task_id')!r}: entrypoint is empty")
        self.entrypoint = entrypoint
        self.conn_id = conn_id
        self.runtime_env = runtime_env
        self.submission_id = submission_id
        self.job_metadata = job_metadata
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.entrypoint_num_gpus = entrypoint_num_gpus
        self.entrypoint_memory = entrypoint_memory
        self.entrypoint_resources = entrypoint_resources
        self.job_timeout = _seconds(job_timeout)
        self.poll_seconds = poll_seconds
        self.log_batch_seconds = log_batch_seconds
        self._job: tuple[str, str] | None = None  # (address, job id) while this process owns it

    # ---- submit -------------------------------------------------------------------------------
    def execute(self, context) -> Any:
        address = ray_client.resolve_address(self.conn_id)
        ti = context["ti"]
        job_id = self.submission_id or submission_id_for(
            ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1), ti.try_number)
        c = ray_client.client(address)
        try:
            existing = c.get_job_info(job_id)
        except RuntimeError as err:
            if "404" not in str(err):
                raise
            existing = None  # no job under that id yet
        if existing is not None:
            self.log.info("Ray job %s already exists at %s (status %s): re-attaching", job_id, address,
                          existing.status)
        else:
            metadata = {"airflow_dag_id": ti.dag_id, "airflow_task_id": ti.task_id,
                        "airflow_run_id": ti.run_id, **(self.job_metadata or {})}
            self._submit(c, job_id, {k: str(v) for k, v in metadata.items()})
            self.log.info("submitted Ray job %s to %s: %s", job_id, address, self.entrypoint)
        self._job = (address, job_id)
        deadline = time.time() + self.job_timeout if self.job_timeout else None
        ti.xcom_push(key=XCOM_JOB_KEY, value={"address": address, "job_id": job_id, "deadline": deadline})
        self._defer(address, job_id, 0, deadline)

    def _submit(self, c, job_id: str, metadata: dict) -> None:
        """Submit, retrying while the head says its job agent is not there yet (a restarting head)."""
        deadline = time.monotonic() + self.submit_retry_seconds
        while True:
            try:
                c.submit_job(entrypoint=self.entrypoint, submission_id=job_id, runtime_env=self.runtime_env,
                             metadata=metadata, entrypoint_num_cpus=self.entrypoint_num_cpus,
                             entrypoint_num_gpus=self.entrypoint_num_gpus,
                             entrypoint_memory=self.entrypoint_memory,
                             entrypoint_resources=self.entrypoint_resources)
                return
            except RuntimeError as err:
                if "try again later" not in str(err) or time.monotonic() > deadline:
                    raise
                self.log.warning("Ray head not ready to take job %s (%s); retrying", job_id, err)
                time.sleep(2)

    def _defer(self, address: str, job_id: str, offset: int, deadline: float | None):
        trigger = RayJobTrigger(address, job_id, offset, self.poll_seconds, self.log_batch_seconds, deadline)
        # Airflow's own trigger timeout is a backstop a little after our deadline (the trigger
        # stops the job at the deadline itself); resume_execution stops the job if it fires.
        backstop = timedelta(seconds=max(deadline - time.time(), 0) + 60) if deadline else None
        self.defer(trigger=trigger, method_name="execute_complete", timeout=backstop)

    # ---- resume -------------------------------------------------------------------------------
    def execute_complete(self, context, event: dict) -> Any:
        address, job_id, status = event["address"], event["job_id"], event["status"]
        self._job = (address, job_id)
        for line in event.get("logs", "").splitlines():
            self.log.info("[ray %s] %s", job_id, line)
        if status == "SUCCEEDED":
            logs = ray_client.client(address).get_job_logs(job_id)
            self._job = None
            return {"job_id": job_id, "status": status, "result": last_json_line(logs)}
        if status in ("FAILED", "STOPPED", "UNREACHABLE"):
            self._job = None
            raise RayJobFailed(f"Ray job {job_id} at {address} ended {status}: {event.get('message')}")
        if status == "TIMEOUT":
            self._job = None
            raise RayJobTimeout(f"Ray job {job_id} at {address} exceeded job_timeout="
                                f"{self.job_timeout:g}s: {event.get('message')}")
        self._defer(address, job_id, event["offset"], event.get("deadline"))

    def resume_execution(self, next_method: str, next_kwargs: dict | None, context):
        if next_method == TRIGGER_FAIL:
            job = context["ti"].xcom_pull(task_ids=self.task_id, key=XCOM_JOB_KEY,
                                          map_indexes=getattr(context["ti"], "map_index", None))
            if job:
                status = ray_client.wait_stopped(job["address"], job["job_id"])
                self.log.error("trigger gave up (%s): stopped Ray job %s (now %s)",
                               (next_kwargs or {}).get("error"), job["job_id"], status)
        return super().resume_execution(next_method, next_kwargs, context)

    def on_kill(self) -> None:
        if self._job is None:
            return
        address, job_id = self._job
        status = ray_client.wait_stopped(address, job_id)
        self.log.info("task killed: stopped Ray job %s (now %s)", job_id, status)
