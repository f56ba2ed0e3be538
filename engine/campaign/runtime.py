"""A campaign at run time: its config, layout, state store, human desk and executor, built lazily.

`Campaign` is what the step functions (`engine.campaign.steps`) share within one process; it also
records finished work units in the state store (`run_units`, `register_units`) and drives progress
callbacks. `SAM3_ENGINE_FAULT=<step>:<n>` makes the process SIGKILL itself right after its n-th
finished unit of that step (fault injection for the resume tests).
"""

from __future__ import annotations

import json
import os
import signal
from functools import cached_property

from engine.campaign.config import CampaignConfig, load_config
from engine.campaign.layout import Layout

_FAULT_COUNT: dict[str, int] = {}


def _fault(step: str) -> None:
    spec = os.environ.get("SAM3_ENGINE_FAULT", "")
    if ":" not in spec:
        return
    name, n = spec.rsplit(":", 1)
    if name == step:
        _FAULT_COUNT[step] = _FAULT_COUNT.get(step, 0) + 1
        if _FAULT_COUNT[step] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)


class Campaign:
    """One campaign's config, layout, state store, human desk and executor (built lazily)."""

    def __init__(self, cfg: CampaignConfig, progress=None):
        self.cfg, self.layout, self.progress = cfg, Layout(cfg), progress

    @cached_property
    def state(self):
        from storage.state import StateStore

        return StateStore(self.cfg.state)

    @cached_property
    def desk(self):
        from engine.campaign.humans import HumanDesk, make_backend

        budget = self.cfg.budgets.human_seconds
        if self.cfg.budgets.money is not None and self.cfg.costs.human_hour_usd > 0:
            by_money = self.cfg.budgets.money / self.cfg.costs.human_hour_usd * 3600
            budget = by_money if budget is None else min(budget, by_money)
        backend = make_backend(self.cfg.humans, self.cfg.name)
        return HumanDesk(self.state, self.cfg.name, backend, self.cfg.humans.deadline_s, budget)

    @cached_property
    def executor(self):
        from engine.campaign.executors import make_executor

        return make_executor(self.cfg.executor)

    def spec(self, phase: int, **extra) -> dict:
        return {"config": json.dumps(self.cfg.model_dump(mode="json")), "phase": phase, **extra}

    def tick(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)

    def run_units(self, phase: int, stage: str, results, todo: int, total: int) -> list[dict]:
        out = []
        done = total - todo
        for summary in results:
            unit = summary["unit"]
            if summary.get("pending"):
                continue
            self.state.upsert_work_unit(self.cfg.name, phase, stage, unit)
            self.state.mark_unit_done(self.cfg.name, phase, stage, unit,
                                      self.layout.store.uri(self.layout.unit_marker(phase, stage, unit)))
            out.append(summary)
            done += 1
            self.tick(f"phase {phase} {stage}", done, total)
            _fault(stage)
        return out

    def register_units(self, phase: int, stage: str, units) -> list[str]:
        """Register units in the state store; mark those with a marker done; return the others."""
        todo = []
        done = {u.unit_key for u in self.state.list_units(self.cfg.name, phase, stage, "done")}
        for unit in units:
            marker = self.layout.unit_marker(phase, stage, unit)
            if self.layout.store.exists(marker):
                if unit not in done:
                    self.state.upsert_work_unit(self.cfg.name, phase, stage, unit)
                    self.state.mark_unit_done(self.cfg.name, phase, stage, unit, self.layout.store.uri(marker))
            else:
                self.state.upsert_work_unit(self.cfg.name, phase, stage, unit)
                todo.append(unit)
        return todo


def open_campaign(config_uri: str | CampaignConfig, progress=None) -> Campaign:
    cfg = config_uri if isinstance(config_uri, CampaignConfig) else load_config(config_uri)
    return Campaign(cfg, progress)


