"""Executors: where the stage functions of `engine.campaign.stages` run, one work unit at a time.

- `InlineExecutor`: in this process, unit after unit (tests, debugging, `executor.kind: inline`).
- `RayExecutor`: a Ray Data pipeline over the units still to do: CPU stages (plan, routing + writes,
  consolidate) as tasks, the SAM 3 predictor (`ProposeActor`) and the verifiers (`VerifyActor`) as
  actor pools (`ActorPoolStrategy`), so a model is loaded once per actor, not once per unit. It
  starts an embedded Ray (`executor.num_cpus`) unless Ray is already initialised or `executor.address`
  (or `RAY_ADDRESS`, which Ray sets inside a job) names a cluster.
Both call the same functions with the same inputs, so they write identical outputs for the same seed.
Each yields one summary dict per finished unit; the caller marks units done in the state store.
`spec` is the picklable description of a phase's stage context (config JSON, phase, model ref,
verifier folder and thresholds) from which workers rebuild their `StageContext`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from engine.campaign.config import parse_config
from engine.campaign.sources import MediaItem
from engine.campaign.stages import (
    StageContext,
    consolidate_unit,
    plan_unit,
    propose_unit,
    route_unit,
    verify_unit,
)


def context_of(spec: dict) -> StageContext:
    cfg = parse_config(json.loads(spec["config"]))
    return StageContext(cfg, spec["phase"], spec.get("model_ref"), spec.get("verifier_dir"), spec.get("thresholds"))


def desk_of(spec: dict):
    from engine.campaign.humans import HumanDesk
    from storage.state import StateStore

    cfg = parse_config(json.loads(spec["config"]))
    return HumanDesk(StateStore(cfg.state), cfg.name, None)


def _items(units: dict[str, list[MediaItem]]) -> list[dict]:
    return [{"unit": u, "items": json.dumps([vars(i) for i in items])} for u, items in units.items()]


def _unpack(row: dict) -> list[MediaItem]:
    return [MediaItem(**d) for d in json.loads(row["items"])]


class InlineExecutor:
    name = "inline"

    def plan(self, spec: dict, units: dict[str, list[MediaItem]]) -> Iterator[dict]:
        ctx = context_of(spec)
        for unit, items in units.items():
            yield plan_unit(ctx, unit, items)

    def propose(self, spec: dict, units: list[str]) -> Iterator[dict]:
        ctx = context_of(spec)
        for unit in units:
            yield propose_unit(ctx, unit)

    def annotate(self, spec: dict, units: list[str]) -> Iterator[dict]:
        ctx, desk = context_of(spec), desk_of(spec)
        for unit in units:
            v = verify_unit(ctx, unit)
            yield route_unit(ctx, unit, v["verdicts"], desk, v["seconds"])

    def consolidate(self, spec: dict, units: dict[str, dict]) -> Iterator[dict]:
        ctx = context_of(spec)
        for unit, results in units.items():
            yield consolidate_unit(ctx, unit, results)


# ---- Ray -----------------------------------------------------------------------------------------
def _out(summary: dict) -> dict:
    return {"summary": json.dumps(summary, sort_keys=True, default=str)}


def _plan_task(row: dict, spec: dict) -> dict:
    return _out(plan_unit(context_of(spec), row["unit"], _unpack(row)))


class ProposeActor:
    """Holds the campaign's model (one load per actor) and proposes masks for whole units."""

    def __init__(self, spec: dict):
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("SAM3_ENGINE_ACTOR_THREADS", "1"))))
        self.ctx = context_of(spec)
        self.ctx.loaded  # noqa: B018 - load the model now, once

    def __call__(self, row: dict) -> dict:
        return _out(propose_unit(self.ctx, row["unit"]))


class VerifyActor:
    """Holds the phase's verifier set and returns the MV/EV verdicts of whole units."""

    def __init__(self, spec: dict):
        self.ctx = context_of(spec)
        self.ctx.verifier_set  # noqa: B018

    def __call__(self, row: dict) -> dict:
        out = verify_unit(self.ctx, row["unit"])
        return {"unit": row["unit"], "verdicts": json.dumps(out["verdicts"], sort_keys=True),
                "seconds": out["seconds"]}


def _route_task(row: dict, spec: dict) -> dict:
    return _out(route_unit(context_of(spec), row["unit"], json.loads(row["verdicts"]), desk_of(spec),
                           float(row["seconds"])))


def _consolidate_task(row: dict, spec: dict) -> dict:
    return _out(consolidate_unit(context_of(spec), row["unit"], json.loads(row["results"])))


class RayExecutor:
    name = "ray"

    def __init__(self, settings):
        import ray

        self.settings = settings
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            address = settings.address or os.environ.get("RAY_ADDRESS")  # set inside a Ray job
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                import tempfile

                ray.init(num_cpus=settings.num_cpus, include_dashboard=False, log_to_driver=False,
                         _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True

    @staticmethod
    def _run(ds) -> Iterator[dict]:
        for row in ds.iter_rows():
            yield json.loads(row["summary"])

    def plan(self, spec: dict, units: dict[str, list[MediaItem]]) -> Iterator[dict]:
        import ray

        if not units:
            return iter(())
        ds = ray.data.from_items(_items(units), override_num_blocks=len(units))
        return self._run(ds.map(_plan_task, fn_kwargs={"spec": spec}, num_cpus=1))

    def propose(self, spec: dict, units: list[str]) -> Iterator[dict]:
        import ray
        from ray.data import ActorPoolStrategy

        if not units:
            return iter(())
        ds = ray.data.from_items([{"unit": u} for u in units], override_num_blocks=len(units))
        ds = ds.map(ProposeActor, fn_constructor_kwargs={"spec": spec}, num_cpus=1,
                    compute=ActorPoolStrategy(size=self.settings.predictor_actors))
        return self._run(ds)

    def annotate(self, spec: dict, units: list[str]) -> Iterator[dict]:
        import ray
        from ray.data import ActorPoolStrategy

        if not units:
            return iter(())
        ds = ray.data.from_items([{"unit": u} for u in units], override_num_blocks=len(units))
        ds = ds.map(VerifyActor, fn_constructor_kwargs={"spec": spec}, num_cpus=1,
                    compute=ActorPoolStrategy(size=self.settings.verifier_actors))
        return self._run(ds.map(_route_task, fn_kwargs={"spec": spec}, num_cpus=0.5))

    def consolidate(self, spec: dict, units: dict[str, dict]) -> Iterator[dict]:
        import ray

        if not units:
            return iter(())
        rows = [{"unit": u, "results": json.dumps(r, sort_keys=True)} for u, r in units.items()]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        return self._run(ds.map(_consolidate_task, fn_kwargs={"spec": spec}, num_cpus=0.5))


def make_executor(settings):
    return RayExecutor(settings) if settings.kind == "ray" else InlineExecutor()
