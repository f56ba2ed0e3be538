"""`sam3-engine campaign ...`: run, step, status, resume, report and export campaigns.

- `campaign run CONFIG.yaml`: every phase and step (resumes where a previous run stopped), with progress bars.
- `campaign step STEP CONFIG.yaml --phase K`: one step (what an Airflow task runs); its JSON summary is
  the last line of stdout.
- `campaign status|resume|report|export NAME [--root ROOT]`: NAME is a campaign name under ROOT
  (default `$SAM3_ENGINE_ROOT` or `out`), whose frozen `campaign.yaml` is used, or a config path.
- `campaign schema`: the JSON schema of a campaign config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

ROOT_HELP = "Storage root the campaign lives under (default $SAM3_ENGINE_ROOT or 'out')."


def _quiet_libraries() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def resolve(name: str, root: str | None) -> str:
    """A config path for NAME: itself if it is a file, else <root>/campaigns/NAME/campaign.yaml."""
    if Path(name).is_file() or name.endswith((".yaml", ".yml")) or "://" in name:
        return name
    root = root or os.environ.get("SAM3_ENGINE_ROOT", "out")
    path = Path(root) / "campaigns" / name / "campaign.yaml"
    if not path.is_file():
        raise typer.BadParameter(f"no campaign {name!r} under {root!r} (looked for {path})", param_hint="NAME")
    return str(path)


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


def _run(config: str, quiet: bool) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.campaign.config import ConfigError
    from engine.campaign.steps import run_campaign

    _quiet_libraries()
    try:
        if quiet:
            return run_campaign(config)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      transient=False) as progress:
            bars: dict[str, int] = {}

            def tick(what: str, done: int, total: int) -> None:
                if what not in bars:
                    bars[what] = progress.add_task(what, total=total)
                progress.update(bars[what], completed=done, total=total)

            return run_campaign(config, progress=tick)
    except (ConfigError, RuntimeError) as err:
        _fail(err)


def _print_result(result: dict) -> None:
    rep = result["report"]
    for name, check in rep["checks"].items():
        typer.echo(f"  {'met    ' if check['met'] else 'NOT met'}  {name}: {json.dumps(check)}")
    typer.echo(f"report: {rep['html']}")
    typer.echo(f"report data: {rep['json']}")


def register(app: typer.Typer) -> None:
    capp = typer.Typer(help="Annotation campaigns: phases of the data loop, step by step.", no_args_is_help=True)
    app.add_typer(capp, name="campaign")

    @capp.command("run")
    def run(config: str = typer.Argument(..., help="Campaign YAML (path or URI)."),
            quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
        """Run every phase of a campaign (resuming where a previous run stopped); print the report path."""
        _print_result(_run(config, quiet))

    @capp.command("step")
    def step(name: str = typer.Argument(..., help="start | plan | propose | annotate | await_humans | "
                                                   "consolidate | retrain | evaluate | promote | report"),
             config: str = typer.Argument(..., help="Campaign YAML (path or URI)."),
             phase: int = typer.Option(None, "--phase", help="Phase index (phase steps).")) -> None:
        """Run one step; its JSON summary is the last line of stdout."""
        from engine.campaign.config import ConfigError
        from engine.campaign.steps import run_step

        _quiet_libraries()
        try:
            out = run_step(config, name, phase)
        except (ConfigError, ValueError, RuntimeError) as err:
            _fail(err)
        typer.echo(json.dumps(out, sort_keys=True, default=str))

    @capp.command("status")
    def status(name: str = typer.Argument(..., help="Campaign name (or config path)."),
               root: str = typer.Option(None, "--root", help=ROOT_HELP)) -> None:
        """Phases, work units done per stage, human tasks by status."""
        from rich.console import Console
        from rich.table import Table

        from engine.campaign.steps import open_campaign

        c = open_campaign(resolve(name, root))
        table = Table(title=f"campaign {c.cfg.name}")
        for col in ("phase", "mode", "status", "plan", "propose", "annotate", "consolidate", "human tasks"):
            table.add_column(col)
        phases = {p.index: p for p in c.state.list_phases(c.cfg.name)} if _started(c) else {}
        for p in c.cfg.phases:
            row = [str(p.index), p.mode, phases[p.index].status if p.index in phases else "not started"]
            for stage in ("plan", "propose", "annotate", "consolidate"):
                units = c.state.list_units(c.cfg.name, p.index, stage) if p.index in phases else []
                row.append(f"{sum(u.status == 'done' for u in units)}/{len(units)}")
            row.append(json.dumps(c.desk.counts(p.index)) if p.index in phases else "{}")
            table.add_row(*row)
        Console().print(table)

    @capp.command("resume")
    def resume(name: str = typer.Argument(..., help="Campaign name (or config path)."),
               root: str = typer.Option(None, "--root", help=ROOT_HELP),
               quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
        """Finish a campaign from its frozen config, skipping everything already done."""
        _print_result(_run(resolve(name, root), quiet))

    @capp.command("report")
    def report(name: str = typer.Argument(..., help="Campaign name (or config path)."),
               root: str = typer.Option(None, "--root", help=ROOT_HELP)) -> None:
        """Write report.json and index.html for what the campaign has done so far."""
        from engine.campaign.steps import report as write

        _quiet_libraries()
        out = write(resolve(name, root))
        typer.echo(f"report: {out['html']}\nreport data: {out['json']}")

    @capp.command("export")
    def export(name: str = typer.Argument(..., help="Campaign name (or config path)."),
               root: str = typer.Option(None, "--root", help=ROOT_HELP),
               out: str = typer.Option(None, "--out", help="Also copy each phase's saco.json here.")) -> None:
        """Where each consolidated phase's SA-Co export and WebDataset shards are."""
        from engine.campaign.steps import open_campaign

        c = open_campaign(resolve(name, root))
        for p in c.cfg.phases:
            done = c.layout.done(c.layout.step_marker(p.index, "consolidate"))
            if done is None:
                typer.echo(f"phase {p.index}: not consolidated yet")
                continue
            typer.echo(f"phase {p.index}: {done['pairs']} pairs {json.dumps(done['labels'])}\n"
                       f"  saco: {done['export']}\n  shards: {' '.join(done['shards'])}")
            if out:
                dest = Path(out) / f"phase-{p.index}-saco.json"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(c.layout.store.read_bytes(done["export"]))
                typer.echo(f"  copied to {dest}")

    @capp.command("schema")
    def schema() -> None:
        """The JSON schema of a campaign config."""
        from engine.campaign.config import CampaignConfig

        typer.echo(json.dumps(CampaignConfig.model_json_schema(), indent=2))


def _started(c) -> bool:
    from storage.state import StateError

    try:
        c.state.get_campaign(c.cfg.name)
        return True
    except StateError:
        return False
