"""`sam3-engine eval`: PCS metrics (cgF1, pmF1, IL_MCC) of predictions against SA-Co gold JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        gt: list[Path] = typer.Option(..., "--gt", help="SA-Co gold GT JSON; repeat for multi-GT "
                                      "(oracle: the best GT per pair is kept)."),
        pred: Path = typer.Option(..., "--pred", help="Predictions: a COCO results JSON list."),
        iou_type: str = typer.Option("segm", "--iou-type",
                                     help="segm (mask IoU) or bbox (box IoU)."),
        official_epsilons: bool = typer.Option(
            False, "--official-epsilons",
            help="Add the official evaluator's 1e-4/1e-6 denominator epsilons (bit-identical to "
                 "facebookresearch/sam3 cgf1_eval.py); default is the exact formulas."),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON to this file."),
    ) -> None:
        """Print cgF1 (0-100), pmF1, IL_MCC and companions as one JSON object."""
        from model.metrics import MetricsInputError, evaluate

        if iou_type not in ("segm", "bbox"):
            typer.echo(f"error: --iou-type {iou_type!r} is not one of segm, bbox", err=True)
            raise typer.Exit(2)
        try:
            result = evaluate([str(p) for p in gt], str(pred), iou_type=iou_type,
                              official_epsilons=official_epsilons)
        except MetricsInputError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        text = json.dumps(result, indent=2)
        if out is not None:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text + "\n")
            except OSError as err:
                typer.echo(f"error: cannot write --out {str(out)!r}: {err}", err=True)
                raise typer.Exit(2) from None
        typer.echo(text)
