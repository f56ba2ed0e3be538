"""`sam3-engine demo`: runs what the engine has on the embedded default and prints where it wrote."""

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(out: str = typer.Option("out/demo", help="Folder to write the demo's outputs to.")) -> None:
        """Run the embedded-default demo and print where its outputs are."""
        typer.echo("sam3-engine demo: the campaign demo is not built yet; nothing was run.")
        raise typer.Exit(1)
