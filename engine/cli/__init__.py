"""The `sam3-engine` command line: one typer app, each command group in its own module."""

from __future__ import annotations

import os

import typer

from engine.cli import (
    campaign_commands,
    demo,
    evaluate,
    model_commands,
    ontology_commands,
    verifier_commands,
    world,
)
from engine.cli import serve_commands

app = typer.Typer(
    name="sam3-engine",
    help="Data engine for Promptable Concept Segmentation with SAM 3.",
    no_args_is_help=True,
    add_completion=False,
)

for module in (demo, world, evaluate, model_commands, ontology_commands, verifier_commands, campaign_commands):
    module.register(app)
serve_commands.register(app)


def main() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no per-load weight bars in CLI output
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time
    app()
