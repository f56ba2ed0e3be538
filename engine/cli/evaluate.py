"""`sam3-engine eval`: PCS metrics (cgF1, pmF1, IL_MCC) of predictions against SA-Co gold JSON."""

import typer


def register(app: typer.Typer) -> None:
    pass
