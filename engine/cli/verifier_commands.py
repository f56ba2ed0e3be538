"""`sam3-engine verifiers ...`: train, calibrate and evaluate the learned MV/EV verifiers.

- `verifiers train --decisions URI --out NAME`: learned MV and EV verifiers from human decision logs
  (`verifiers.decisions` Parquet; repeat `--decisions`), with features from `--model` (a registry
  reference, a model folder, or `tiny`). With `--root` (or `$SAM3_ENGINE_ROOT`) the result is
  published to that root's registry as a new version of NAME; without, NAME is a local folder.
- `verifiers calibrate --verifier REF --decisions URI --out DIR`: auto-accept / auto-reject
  thresholds reaching `--precision` (default 0.98) on the labelled slice, the coverage left to AI,
  and a reliability diagram per task: `DIR/thresholds.json`, `DIR/calibration.json`,
  `DIR/reliability.png`; `--publish NAME` also publishes the verifiers carrying those thresholds
  (`VerifierSet.thresholds`) as a new registry version.
- `verifiers eval --verifier REF --decisions URI`: accuracy against the majority of the other raters
  beside a held-out rater's accuracy, per task, as JSON.
Images are found through each decision's media URI, else `--media PREFIX/<media id>.<png|jpg>`, else
the shapes world (its media ids regenerate their images).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
ROOT_ENV = "SAM3_ENGINE_ROOT"


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _registry(root: str | None):
    if not root:
        return None
    from verifiers.store import registry

    return registry(root)


def media_resolver(prefix: str | None):
    """media id -> image bytes: PREFIX/<id>.<ext> when given, else a regenerated shapes-world image."""
    from storage.objectstore import ObjectStore
    from storage.uri import join

    store = ObjectStore()

    def resolve(media_id: str):
        if prefix:
            for ext in (".png", ".jpg", ".jpeg", ".webp", ""):
                uri = join(prefix, media_id + ext)
                if store.exists(uri):
                    return store.read_bytes(uri)
        try:
            from engine.world.samples import encode_png
            from engine.world.scene import parse_media_key, render_scene

            domain, size, seed, index = parse_media_key(media_id)
        except ValueError:
            return None
        return encode_png(render_scene(seed, index, domain, size).image)

    return resolve


def _contexts(model_ref: str, root: str | None, score_threshold: float):
    from model.presets import ModelLoadError, load_model
    from verifiers.context import ContextProvider

    try:
        if model_ref in ("tiny", "full") or os.path.isdir(model_ref):
            loaded = load_model(model_ref)
        elif root:
            from model.registry import ModelRegistry

            loaded = ModelRegistry(root).load(model_ref)
        else:
            raise ModelLoadError(
                f"--model {model_ref!r} is not a folder or preset, and no --root registry is set"
            )
    except (ModelLoadError, LookupError) as err:
        _fail(str(err))
    return ContextProvider(loaded, score_threshold=score_threshold, model_version=model_ref)


def _decisions(uris: list[str]):
    from storage.errors import StorageError
    from verifiers.decisions import read_decisions
    from verifiers.examples import build_examples

    try:
        return build_examples(read_decisions(uris))
    except (StorageError, OSError, ValueError) as err:
        _fail(f"cannot read decisions {uris}: {err}")


def _load(ref: str, root: str | None):
    from verifiers.store import VerifierLoadError, load_verifiers

    try:
        return load_verifiers(ref, _registry(root))
    except (VerifierLoadError, LookupError) as err:
        _fail(str(err))


def _evaluate(vset, examples, contexts, media, precision, min_support, bound) -> dict:
    from verifiers.evaluation import evaluate_verifier

    out = {}
    for task in vset.tasks:
        exs = examples.of(task)
        if exs:
            out[task] = evaluate_verifier(
                vset.verifier(task, contexts, media),
                exs,
                precision=precision,
                min_support=min_support,
                bound=bound,
            )
    if not out:
        _fail(f"the decisions hold no examples for the verifier's tasks {vset.tasks}")
    return out


def register(app: typer.Typer) -> None:
    vapp = typer.Typer(
        help="AI verifiers (MV, EV): train, calibrate, evaluate.", no_args_is_help=True
    )
    app.add_typer(vapp, name="verifiers")
    root_opt = typer.Option(
        None,
        "--root",
        envvar=ROOT_ENV,
        help="Storage root whose model registry holds verifier and model versions.",
    )
    media_opt = typer.Option(
        None, "--media", help="Folder / URI prefix holding <media id>.<png|jpg> images."
    )

    @vapp.command("train")
    def train(
        decisions: list[str] = typer.Option(
            ..., "--decisions", help="Decision log Parquet URI (repeatable)."
        ),
        out: str = typer.Option(..., "--out", help="Registry name (with --root) or output folder."),
        model: str = typer.Option(
            "tiny", "--model", help="SAM 3 model for features: registry ref, folder, tiny."
        ),
        task: str = typer.Option("both", "--task", help="mv, ev or both."),
        embedder: str = typer.Option(
            "minilm", "--embedder", help="Phrase embedder: minilm, hashing or a folder."
        ),
        seed: int = typer.Option(0, "--seed"),
        score_threshold: float = typer.Option(
            0.3, "--score-threshold", help="Predictor threshold for features."
        ),
        root: str | None = root_opt,
        media: str | None = media_opt,
    ) -> None:
        """Train learned MV/EV verifiers from human decision logs; save or publish them."""
        from verifiers.store import publish
        from verifiers.training import train_verifiers

        if task not in ("mv", "ev", "both"):
            _fail(f"--task {task!r} is not one of mv, ev, both")
        examples = _decisions(decisions)
        contexts = _contexts(model, root, score_threshold)
        try:
            vset = train_verifiers(
                examples,
                contexts=contexts,
                media=media_resolver(media),
                tasks=("mv", "ev") if task == "both" else (task,),
                embedder=embedder,
                seed=seed,
                info={
                    "decisions": decisions,
                    "feature_model": model,
                    "score_threshold": score_threshold,
                },
            )
        except ValueError as err:
            _fail(str(err))
        vset.info["feature_model"] = model
        reg = _registry(root)
        if reg is not None:
            where = publish(
                vset, out, reg, lineage={"decisions": decisions, "feature_model": model}
            )
        else:
            where = str(vset.save(out))
        for t, m in vset.models.items():
            console.print(
                f"{t}: {vset.info['examples'][t]} classes {m.classes} temperature {m.temperature:.2f}"
            )
        console.print(f"verifiers saved: [bold]{where}[/bold]")

    def _shared(verifier, decisions, model, root, media, precision, min_support, bound):
        vset = _load(verifier, root)
        examples = _decisions(decisions)
        model_ref = model or vset.info.get("feature_model") or "tiny"
        contexts = _contexts(model_ref, root, float(vset.info.get("score_threshold", 0.3)))
        return vset, _evaluate(
            vset, examples, contexts, media_resolver(media), precision, min_support, bound
        )

    @vapp.command("calibrate")
    def calibrate(
        verifier: str = typer.Option(
            ..., "--verifier", help="Verifier folder or registry reference."
        ),
        decisions: list[str] = typer.Option(
            ..., "--decisions", help="Human-labelled slice (repeatable)."
        ),
        out: Path = typer.Option(
            ..., "--out", help="Folder for thresholds.json, calibration.json, reliability.png."
        ),
        precision: float = typer.Option(
            0.98, "--precision", help="Target precision of auto decisions."
        ),
        min_support: int = typer.Option(
            10, "--min-support", help="Fewest items an auto decision may rest on."
        ),
        bound: str = typer.Option(
            "empirical", "--bound", help="empirical or wilson (lower confidence bound)."
        ),
        model: str | None = typer.Option(
            None, "--model", help="Feature model (default: the one trained with)."
        ),
        publish_as: str | None = typer.Option(
            None,
            "--publish",
            help="Also publish the verifiers with these thresholds as a new "
            "version of this registry name (needs --root; the calibrated version is its parent).",
        ),
        root: str | None = root_opt,
        media: str | None = media_opt,
    ) -> None:
        """Choose auto-accept/auto-reject thresholds at a target precision; write a reliability diagram."""
        from verifiers.reliability import reliability_png

        if not 0 < precision <= 1 or bound not in ("empirical", "wilson"):
            _fail(
                f"--precision must be in (0, 1] and --bound empirical or wilson (got {precision}, {bound!r})"
            )
        vset, report = _shared(
            verifier, decisions, model, root, media, precision, min_support, bound
        )
        out.mkdir(parents=True, exist_ok=True)
        thresholds = {
            "verifier": vset.version,
            "target_precision": precision,
            **{t: r["thresholds"] for t, r in report.items()},
        }
        (out / "thresholds.json").write_text(json.dumps(thresholds, indent=2))
        (out / "calibration.json").write_text(json.dumps(report, indent=2, default=str))
        png = reliability_png(
            {t.upper(): r["reliability"] for t, r in report.items()},
            out / "reliability.png",
            title=f"P(accept) reliability, {vset.version}",
        )
        table = Table(title=f"calibration at precision {precision}")
        for col in ("task", "n", "auto-accept at", "auto-reject at", "coverage", "ECE"):
            table.add_column(col)
        for t, r in report.items():
            th = r["thresholds"]
            fmt = lambda v: "-" if v is None else f"{v:.3f}"
            table.add_row(
                t,
                str(th["n"]),
                fmt(th["accept_at"]),
                fmt(th["reject_at"]),
                f"{th['coverage']:.1%}",
                f"{r['reliability']['ece']:.3f}",
            )
        console.print(table)
        console.print(
            f"thresholds: [bold]{out / 'thresholds.json'}[/bold]  diagram: [bold]{png}[/bold]"
        )
        if publish_as:
            from verifiers.store import publish

            reg = _registry(root)
            if reg is None:
                _fail("--publish needs a registry: pass --root or set $" + ROOT_ENV)
            parent = (
                vset.version
                if ":" in vset.version and not vset.version.startswith("dir:")
                else None
            )
            vset.thresholds = thresholds
            ref = publish(
                vset,
                publish_as,
                reg,
                parent=parent,
                lineage={"calibrated_on": decisions, "calibrated_from": thresholds["verifier"]},
            )
            console.print(f"published with thresholds: [bold]{ref}[/bold]")

    @vapp.command("eval")
    def evaluate(
        verifier: str = typer.Option(
            ..., "--verifier", help="Verifier folder or registry reference."
        ),
        decisions: list[str] = typer.Option(
            ..., "--decisions", help="Held-out decision logs (repeatable)."
        ),
        out: Path | None = typer.Option(None, "--out", help="Also write the JSON report here."),
        model: str | None = typer.Option(
            None, "--model", help="Feature model (default: the one trained with)."
        ),
        root: str | None = root_opt,
        media: str | None = media_opt,
    ) -> None:
        """Accuracy vs the majority of the other raters, beside a held-out rater's accuracy."""
        keys = (
            "verifier",
            "examples",
            "errors",
            "items",
            "judgements",
            "ai_accuracy",
            "human_accuracy",
            "ai_vs_majority_all",
        )
        _, report = _shared(verifier, decisions, model, root, media, 0.98, 10, "empirical")
        result = {
            t: {k: r[k] for k in keys} | {"ece": r["reliability"]["ece"]} for t, r in report.items()
        }
        text = json.dumps(result, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        typer.echo(text)
