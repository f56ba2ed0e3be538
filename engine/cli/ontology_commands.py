"""`sam3-engine ontology ...`: inspect concept graphs, map phrases to nodes, propose noun phrases.

- `ontology stats SOURCE`: graph size, depth, branching and domains; a Wikidata JSON-lines file
  (`wikidata:PATH`, no roots) is streamed and only counted, malformed lines listed by number.
- `ontology map "phrase" ... --source S`: the node each phrase maps to (exact, head noun, or MiniLM
  retrieval top-k, optionally confirmed by an LLM judge at `--judge-url`), with candidates.
- `ontology propose --images DIR --source S --out PAIRS.parquet`: one proposer (config `kind`) over
  every image of DIR; writes the `proposals` table (proposed and dropped rows, with reasons).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
console = Console(soft_wrap=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def stats(source: str, as_json: bool = False) -> dict:
    """Stats of a source (a dict, also printed)."""
    from ontology.graph import OntologyError
    from ontology.loaders import load_source
    from ontology.loaders.wikidata import scan_wikidata
    from ontology.relations import graph_stats

    try:
        if source.startswith("wikidata:") and "#" not in source:
            scan = scan_wikidata(source.split(":", 1)[1])
            result = {"source": source, "records": scan.records, "subclass_edges": scan.subclass_edges,
                      "instance_edges": scan.instance_edges, "roots": scan.roots,
                      "malformed_lines": scan.errors.count,
                      "first_malformed": [f"line {n}: {r}" for n, r in scan.errors.first[:5]]}
        else:
            result = {"source": source, **graph_stats(load_source(source))}
    except (OntologyError, OSError) as err:
        _fail(str(err))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        table = Table(title=f"ontology {source}", show_header=False)
        for k, v in result.items():
            table.add_row(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v))
        console.print(table)
    return result


def _proposer_config(config: Optional[Path], kind: Optional[str], source: str, per_image: Optional[int]) -> dict:
    doc: dict = {}
    if config is not None:
        try:
            doc = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            _fail(f"cannot read proposer config {config}: {err}")
        doc = doc.get("proposer", doc)
    if kind:
        doc["kind"] = kind
    doc.setdefault("kind", "ontology")
    if doc["kind"] in ("ontology", "model"):
        doc.setdefault("source", source)
    if per_image is not None:
        doc["per_image"] = per_image
    return doc


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Concept ontologies: stats, phrase -> node mapping, NP proposal.",
                        no_args_is_help=True)
    app.add_typer(group, name="ontology")

    @group.command("stats")
    def stats_command(
        source: str = typer.Argument(..., help="shapes | common_objects | FILE.yaml | wordnet[:DIR] | "
                                               "wikidata:FILE.jsonl[.gz] (optionally #ROOT,ROOT)"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Size, depth, branching and domains of an ontology source."""
        stats(source, as_json)

    @group.command("map")
    def map_command(
        phrases: list[str] = typer.Argument(..., help="Noun phrases to map."),
        source: str = typer.Option("common_objects", "--source", help="Ontology source."),
        k: int = typer.Option(5, "--k", help="Candidates retrieved per phrase."),
        min_score: float = typer.Option(0.6, "--min-score", help="Accept the top candidate from this cosine."),
        embedder: str = typer.Option("minilm", "--embedder", help="minilm | hashing | a model folder."),
        judge_url: Optional[str] = typer.Option(None, "--judge-url",
                                                help="OpenAI-compatible base URL of an LLM judge."),
        judge_model: str = typer.Option("judge", "--judge-model", help="Model name for the judge."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Map phrases to ontology nodes (exact form, head noun, then embedding retrieval + judge)."""
        from ontology.embedding import get_embedder
        from ontology.graph import OntologyError
        from ontology.loaders import load_source
        from ontology.mapping import PhraseMapper
        from ontology.normalise import normalise

        try:
            graph = load_source(source)
            judge = None
            if judge_url:
                from ontology.llm import ChatClient, LLMJudge

                judge = LLMJudge(ChatClient(judge_url, judge_model))
            mapper = PhraseMapper(graph, get_embedder(embedder), k=k, min_score=min_score, judge=judge)
        except (OntologyError, RuntimeError, ValueError) as err:
            _fail(str(err))
        out = []
        for phrase in phrases:
            norm = normalise(phrase)
            if not norm.ok:
                out.append({"phrase": phrase, "node_id": None, "method": "rejected", "reason": norm.message})
                continue
            m = mapper.map(norm.phrase)
            out.append({"phrase": phrase, "normalised": norm.phrase, "node_id": m.node_id,
                        "name": graph.node(m.node_id).name if m.node_id else None, "method": m.method,
                        "score": round(m.score, 4), "reason": m.reason,
                        "candidates": [{"node_id": c.node_id, "name": c.name, "score": round(c.score, 4)}
                                       for c in m.candidates]})
        if as_json:
            typer.echo(json.dumps(out, indent=2))
            return
        table = Table("phrase", "node", "method", "score", "candidates / reason")
        for r in out:
            extra = ", ".join(f"{c['name']} {c['score']:.2f}" for c in r.get("candidates", [])) or r["reason"]
            table.add_row(r["phrase"], r.get("name") or "-", r["method"], f"{r.get('score', 0):.2f}", extra)
        console.print(table)

    @group.command("propose")
    def propose_command(
        images: Path = typer.Option(..., "--images", help="Folder of images (searched recursively)."),
        out: str = typer.Option(..., "--out", help="Output Parquet (proposals table)."),
        source: str = typer.Option("shapes", "--source", help="Ontology source for ontology/model proposers."),
        config: Optional[Path] = typer.Option(None, "--config", help="Proposer YAML (a 'proposer:' mapping)."),
        kind: Optional[str] = typer.Option(None, "--proposer", help="ontology | model | openai | local_lm"),
        per_image: Optional[int] = typer.Option(None, "--per-image", help="Phrases per image."),
        domain: Optional[str] = typer.Option(None, "--domain", help="Domain of the images."),
        model_dir: Optional[Path] = typer.Option(None, "--model", help="SAM 3 model folder (proposer 'model')."),
    ) -> None:
        """Propose noun phrases for every image of a folder; write PAIRS.parquet."""
        from pydantic import ValidationError

        from ontology.graph import OntologyError
        from ontology.proposals_table import write_proposals
        from ontology.proposers import ProposalRequest, build_proposer

        if not images.is_dir():
            _fail(f"--images {images} is not a folder")
        files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            _fail(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {images}")
        doc = _proposer_config(config, kind, source, per_image)
        predictor = None
        try:
            if doc["kind"] == "model":
                if model_dir is None:
                    _fail("proposer 'model' needs --model DIR (a saved SAM 3 model)")
                from model.predictor import Predictor
                from model.presets import load_model

                predictor = Predictor(load_model(model_dir))
            proposer = build_proposer(doc, predictor=predictor)
        except ValidationError as err:
            _fail(f"bad proposer config: {err}")
        except (OntologyError, OSError, ValueError, RuntimeError) as err:
            _fail(str(err))
        media = {str(p.relative_to(images).with_suffix("")): p for p in files}
        batches = []
        from rich.progress import track

        for media_id, path in track(list(media.items()), description=f"propose ({doc['kind']})",
                                    transient=True, console=console):
            req = ProposalRequest(media_id, image=path.read_bytes(), domain=domain)
            batches.extend(proposer.propose([req]))
        uri = write_proposals(out, batches, proposer.name, {m: str(p) for m, p in media.items()})
        n_prop = sum(len(b.proposals) for b in batches)
        n_drop = sum(len(b.dropped) for b in batches)
        console.print(f"{n_prop} phrases proposed, {n_drop} dropped, {len(batches)} images -> {uri}")
        reasons = {k: v for k, v in proposer.stats.items() if k.startswith("dropped:")}
        if reasons:
            console.print("drops by reason: " + ", ".join(f"{k[8:]}={v}" for k, v in sorted(reasons.items())))
