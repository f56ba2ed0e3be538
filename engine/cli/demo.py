"""`sam3-engine demo`: runs the embedded-default demo campaign (engine.demo) and prints where the report is."""

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: str = typer.Option("out/demo", "--out", help="Folder to write the demo's outputs to."),
        images: int = typer.Option(32, "--images", min=1, help="Shapes-world images annotated per phase."),
        gold_images: int = typer.Option(16, "--gold-images", min=1, help="Gold images per domain."),
        train_minutes: float = typer.Option(3.0, "--train-minutes", min=0.01,
                                            help="Wall-time budget per retrain (load, train, save)."),
        seed: int = typer.Option(0, "--seed", min=0, help="World, model and annotator seed."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Phases 1-3 on the shapes world: human -> human + AI verifiers -> new domain; retrain and gate each."""
        from engine.cli.campaign_commands import _quiet_libraries
        from engine.demo import DemoConfig, run_demo

        _quiet_libraries()
        cfg = DemoConfig(out=out, images=images, gold_images=gold_images, train_minutes=train_minutes, seed=seed)
        if quiet:
            report = run_demo(cfg)
        else:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn()) as progress:
                bars: dict[str, int] = {}

                def tick(what: str, done: int, total: int) -> None:
                    if what not in bars:
                        bars[what] = progress.add_task(what, total=total)
                    progress.update(bars[what], completed=done, total=total)

                report = run_demo(cfg, progress=tick)
        typer.echo(f"campaign finished in {report['seconds']} s")
        for name, check in report["report"]["checks"].items():
            typer.echo(f"  {'met    ' if check['met'] else 'NOT met'}  {name}: {json.dumps(check)}")
        typer.echo(f"report: {report['paths']['html']}")
        typer.echo(f"report data: {report['paths']['json']}")
