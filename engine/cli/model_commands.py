"""`sam3-engine model ...`: train, predict, evaluate and list SAM 3 model versions."""

import typer


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(help="SAM 3 models: train, predict, evaluate, list.", no_args_is_help=True)
    app.add_typer(model_app, name="model")
