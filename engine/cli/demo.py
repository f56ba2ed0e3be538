"""`sam3-engine demo`: runs the embedded-default demo (engine.demo) and prints where the report is."""

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: str = typer.Option("out/demo", "--out", help="Folder to write the demo's outputs to."),
        train_images: int = typer.Option(300, "--train-images", min=1, help="Shapes-world training images."),
        gold_images: int = typer.Option(30, "--gold-images", min=1, help="Shapes-world gold images."),
        train_minutes: float = typer.Option(3.0, "--train-minutes", min=0.05, help="CPU training time budget."),
        seed: int = typer.Option(0, "--seed", min=0, help="World and model seed."),
    ) -> None:
        """Shapes world -> shards -> retrain tiny SAM 3 -> gold eval -> registry -> simulated review."""
        from engine.demo import DemoConfig, run_demo

        report = run_demo(DemoConfig(out=out, train_images=train_images, gold_images=gold_images,
                                     train_minutes=train_minutes, seed=seed))
        typer.echo(f"gold cgF1 {report['gold_before']['cgF1']:.1f} -> {report['gold_after']['cgF1']:.1f} "
                   f"({report['model']['ref']}, promoted: {report['model']['promoted']})")
        typer.echo(f"report: {report['paths']['html']}")
        typer.echo(f"report data: {report['paths']['json']}")
