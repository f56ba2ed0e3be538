"""`sam3-engine world ...`: the shapes world generator (filled in by the shapes-world work)."""

import typer


def register(app: typer.Typer) -> None:
    world_app = typer.Typer(help="The shapes world: a domain with exact ground truth.", no_args_is_help=True)
    app.add_typer(world_app, name="world")
