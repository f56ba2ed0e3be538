"""`sam3-engine serve ...`: long-running servers (the SAM 3 ML backend for Label Studio)."""

from __future__ import annotations

import os

import typer

from engine.cli.model_commands import RootOption, StateOption, load_model_ref


def _version_of(ref: str) -> str:
    if os.path.isdir(ref):
        return f"sam3:{os.path.basename(os.path.normpath(ref))}"
    return f"sam3:{ref}"


def register(app: typer.Typer) -> None:
    serve_app = typer.Typer(help="Run servers: the SAM 3 ML backend for Label Studio.", no_args_is_help=True)
    app.add_typer(serve_app, name="serve")

    @serve_app.command("label-studio-backend")
    def label_studio_backend(
        model: str = typer.Option(..., "--model", help="Model reference: preset (tiny, full), local model "
                                  "folder, or registry ref (name, name:v0002, name@promoted)."),
        port: int = typer.Option(9090, "--port", min=1, max=65535, help="Port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 for other machines)."),
        score_threshold: float = typer.Option(0.5, "--score-threshold", min=0.0, max=1.0,
                                              help="Keep instances scoring at least this."),
        max_instances: int = typer.Option(50, "--max-instances", min=1, help="Most regions per task."),
        device: str = typer.Option("cpu", "--device", help="torch device (cpu, cuda, cuda:1)."),
        version: str | None = typer.Option(None, "--model-version", help="Version name shown in Label "
                                              "Studio (default: sam3:<model ref>)."),
        root: str | None = RootOption,
        state_url: str | None = StateOption,
    ) -> None:
        """Serve SAM 3 as a Label Studio ML backend (/health, /setup, /predict, /webhook)."""
        from engine.serve.label_studio_ml import serve

        loaded = load_model_ref(model, root, state_url, device=device)
        typer.echo(f"SAM 3 ML backend for Label Studio on http://{host}:{port} (model {model})", err=True)
        serve(loaded, version or _version_of(model), host=host, port=port, score_threshold=score_threshold,
              max_instances=max_instances)
