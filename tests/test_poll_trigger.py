"""DeferredPollOperator / CallablePollTrigger: done, transient errors retried, persistent errors
and the timeout fail the task with a message naming the target (the trigger runs as in the
triggerer: rebuilt from its serialised form, first event taken)."""

# ruff: noqa: I001  (tests.airflow_env must be imported before airflow)
from __future__ import annotations

import tests.airflow_env  # noqa: F401  (Airflow settings before airflow is imported)

import asyncio
import time

import pytest

from airflow.sdk.exceptions import AirflowException, TaskDeferred

from orchestration.poll import CallablePollTrigger, DeferredPollOperator, PollTimeout, load_target

STATE = {"calls": 0, "fail_first": 0, "done_after": 0}


def target(campaign: str, phase: int) -> dict:
    """Raises for the first `fail_first` calls, reports done from call `done_after` on."""
    STATE["calls"] += 1
    if STATE["calls"] <= STATE["fail_first"]:
        raise ConnectionError(f"state store unreachable (call {STATE['calls']})")
    return {"campaign": campaign, "phase": phase, "done": STATE["calls"] >= STATE["done_after"]}


PATH = f"{__name__}.target"


@pytest.fixture(autouse=True)
def reset():
    STATE.update(calls=0, fail_first=0, done_after=0)


def first_event(trigger) -> dict:
    _, kwargs = trigger.serialize()

    async def go():
        return await anext(type(trigger)(**kwargs).run())
    return asyncio.run(go()).payload


def test_done_on_the_first_call_never_defers():
    op = DeferredPollOperator(task_id="w", target=PATH, call_kwargs={"campaign": "c", "phase": 2})
    assert op.execute({}) == {"campaign": "c", "phase": 2, "done": True}
    assert STATE["calls"] == 1


def test_defers_and_retries_transient_errors_until_done():
    STATE.update(done_after=4)
    op = DeferredPollOperator(task_id="w", target=PATH, call_kwargs={"campaign": "c", "phase": 1},
                              poll_seconds="0.05", timeout="30")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    STATE.update(fail_first=3)  # the next two polls fail, then it answers
    event = first_event(deferred.value.trigger)
    assert event["status"] == "done" and event["result"]["done"] is True
    assert op.execute_complete({}, event) == {"campaign": "c", "phase": 1, "done": True}


def test_persistent_errors_fail_the_task_naming_the_target():
    STATE.update(fail_first=10**6)
    trigger = CallablePollTrigger(PATH, {"campaign": "c", "phase": 1}, poll_seconds=0.01)
    event = first_event(trigger)
    assert event["status"] == "error" and "state store unreachable" in event["result"]
    op = DeferredPollOperator(task_id="w", target=PATH, call_kwargs={"campaign": "c", "phase": 1})
    with pytest.raises(AirflowException, match=r"test_poll_trigger.target.*kept failing.*ConnectionError"):
        op.execute_complete({}, event)


def test_timeout_fails_the_task_with_the_last_result():
    STATE.update(done_after=10**6)
    trigger = CallablePollTrigger(PATH, {"campaign": "c", "phase": 1}, poll_seconds=0.05,
                                  deadline=time.time() + 0.3)
    event = first_event(trigger)
    assert event["status"] == "timeout" and event["polls"] >= 2
    op = DeferredPollOperator(task_id="w", target=PATH, call_kwargs={"campaign": "c", "phase": 1}, timeout=0.3)
    with pytest.raises(PollTimeout, match="not done after 0.3s.*'done': False"):
        op.execute_complete({}, event)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="must be positive"):
        DeferredPollOperator(task_id="w", target=PATH, poll_seconds=0)
    rendered_badly = DeferredPollOperator(task_id="w", target=PATH, poll_seconds="soon", timeout=5)
    with pytest.raises(ValueError, match="poll_seconds 'soon'.*must be numbers"):
        rendered_badly.execute({})  # a Jinja value is checked once rendered
    with pytest.raises(ValueError, match="cannot be imported"):
        load_target("engine.campaign.steps.no_such_step")
    with pytest.raises(ValueError, match="dotted path"):
        load_target("await_humans")
