"""A deferrable wait on a plain function: call it until its result says done, from the triggerer.

    DeferredPollOperator(task_id="await_humans", target="engine.campaign.steps.await_humans",
                         call_kwargs={"config_uri": "{{ params.config_uri }}", "phase": 1},
                         poll_seconds=60, timeout=timedelta(days=2))

The function (given by dotted path, so the trigger serialises) is called with `call_kwargs` and returns
a dict; `result[done_key]` truthy means done. The operator calls it once on the worker (no deferral
when nothing is pending), else defers to `CallablePollTrigger`, which calls it in a thread every
`poll_seconds` until done or the deadline. Done: the task returns the last result. Deadline: the
task fails with `PollTimeout`, naming the last result (a retry resumes waiting).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent


class PollTimeout(AirflowException):
    """The polled function did not report done before the operator's timeout."""


def load_target(path: str):
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"poll target {path!r} must be a dotted path like package.module.function")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"poll target {path!r} cannot be imported: {err}") from err


def _check(path: str, result: Any) -> dict:
    if not isinstance(result, dict):
        raise TypeError(f"poll target {path} returned {type(result).__name__}, expected a dict")
    return result


class CallablePollTrigger(BaseTrigger):
    """Call `target(**kwargs)` every `poll_seconds` (in a thread) until done or `deadline` (epoch s).

    An exception from the target is retried at the next poll; `max_errors` in a row fire an `error`
    event (the task fails with the last error) instead of looping forever.
    """

    max_errors = 5

    def __init__(self, target: str, kwargs: dict, poll_seconds: float = 60.0, deadline: float | None = None,
                 done_key: str = "done"):
        super().__init__()
        self.target, self.kwargs, self.poll_seconds = target, dict(kwargs), poll_seconds
        self.deadline, self.done_key = deadline, done_key

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"target": self.target, "kwargs": self.kwargs, "poll_seconds": self.poll_seconds,
                 "deadline": self.deadline, "done_key": self.done_key})

    async def run(self):
        fn = load_target(self.target)
        polls, errors = 0, 0
        while True:
            polls += 1
            try:
                result = _check(self.target, await asyncio.to_thread(fn, **self.kwargs))
            except Exception as err:  # noqa: BLE001 - a transient failure of the polled system
                errors += 1
                if errors >= self.max_errors:
                    yield TriggerEvent({"status": "error", "result": f"{type(err).__name__}: {err}",
                                        "polls": polls})
                    return
                self.log.warning("%s failed (%s/%s): %s", self.target, errors, self.max_errors, err)
                await asyncio.sleep(self.poll_seconds)
                continue
            errors = 0
            if result.get(self.done_key):
                yield TriggerEvent({"status": "done", "result": result, "polls": polls})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "result": result, "polls": polls})
                return
            self.log.info("%s: not done yet (%s); next poll in %ss", self.target, result, self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)


class DeferredPollOperator(BaseOperator):
    """Wait (deferred, no worker slot held) until `target(**kwargs)[done_key]` is truthy."""

    # poll_seconds / timeout_s may be Jinja strings ("{{ params.human_poll_seconds }}")
    template_fields = ("call_kwargs", "poll_seconds", "timeout_s")

    def __init__(self, *, target: str, call_kwargs: dict | None = None, poll_seconds: float | str = 60.0,
                 timeout: timedelta | float | str | None = None, done_key: str = "done", **op_kwargs):
        super().__init__(**op_kwargs)
        self.target, self.call_kwargs = target, call_kwargs or {}
        self.poll_seconds, self.done_key = poll_seconds, done_key
        self.timeout_s = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if not isinstance(self.timeout_s, str) and not isinstance(self.poll_seconds, str):
            self._numbers()

    def _numbers(self) -> None:
        name = f"DeferredPollOperator {self.task_id!r}"
        try:
            self.poll_seconds = float(self.poll_seconds)
            self.timeout_s = None if self.timeout_s in (None, "", "None") else float(self.timeout_s)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: poll_seconds {self.poll_seconds!r} / timeout {self.timeout_s!r} "
                             "must be numbers") from None
        if self.poll_seconds <= 0 or (self.timeout_s is not None and self.timeout_s <= 0):
            raise ValueError(f"{name}: poll_seconds ({self.poll_seconds!r}) and timeout ({self.timeout_s!r}) "
                             "must be positive")

    def execute(self, context) -> dict:
        self._numbers()
        result = _check(self.target, load_target(self.target)(**self.call_kwargs))
        if result.get(self.done_key):
            return result
        deadline = time.time() + self.timeout_s if self.timeout_s else None
        self.log.info("%s not done (%s): deferring, polling every %ss", self.target, result, self.poll_seconds)
        trigger = CallablePollTrigger(self.target, self.call_kwargs, self.poll_seconds, deadline, self.done_key)
        self.defer(trigger=trigger, method_name="execute_complete",
                   timeout=timedelta(seconds=self.timeout_s + 300) if self.timeout_s else None)

    def execute_complete(self, context, event: dict) -> dict:
        self._numbers()
        if event["status"] == "error":
            raise AirflowException(f"{self.target}({self.call_kwargs}) kept failing "
                                   f"({event['polls']} polls): {event['result']}")
        if event["status"] == "timeout":
            raise PollTimeout(f"{self.target}({self.call_kwargs}) not done after {self.timeout_s:g}s "
                              f"({event['polls']} polls); last result: {event['result']}")
        return event["result"]
