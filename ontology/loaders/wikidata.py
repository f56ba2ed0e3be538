"""Wikidata items as a `ConceptGraph`, streamed from JSON lines so a many-GB dump never loads whole.

Two line shapes are accepted (plain, `.gz` or `.bz2`):

- compact: `{"id": "Q146", "label": "house cat", "aliases": ["cat"], "subclass_of": ["Q39201"],
  "instance_of": []}`;
- the official entity dump (`latest-all.json`): one entity per line inside a `[ ... ]` array, lines
  ending in `,`, with `labels`/`aliases` per language and `claims` P279 (subclass of) / P31
  (instance of).

`iter_wikidata` yields one `WikidataRecord` at a time (memory does not grow with the file); a
malformed line raises `WikidataLineError` naming its line number, or with `errors=[]` is recorded
there and skipped. `load_wikidata` builds a graph of everything under some root items in two
streaming passes: the first keeps only the subclass edges, the second only the kept items' text.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ontology.graph import ConceptGraph, OntologyError
from ontology.loaders.common import BuildReport, RawConcept, build_graph, restrict_to_roots


class WikidataLineError(OntologyError):
    """A line that is not a Wikidata item; carries the file and 1-based line number."""

    def __init__(self, path: str, lineno: int, reason: str):
        super().__init__(f"{path}:{lineno}: {reason}")
        self.path, self.lineno, self.reason = path, lineno, reason


class WikidataRecord(NamedTuple):
    id: str
    label: str
    aliases: tuple[str, ...] = ()
    subclass_of: tuple[str, ...] = ()
    instance_of: tuple[str, ...] = ()
    description: str = ""
    lineno: int = 0


@dataclass
class LineErrors:
    """Malformed lines met while streaming: the total, and the first `keep` (line, reason) pairs."""

    keep: int = 100
    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)

    def add(self, lineno: int, reason: str) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append((lineno, reason))


def _open(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    return path.open("rb", buffering=1 << 20)


def _claim_ids(claims: dict, prop: str) -> tuple[str, ...]:
    out = []
    for statement in claims.get(prop, ()) or ():
        try:
            value = statement["mainsnak"]["datavalue"]["value"]
        except (KeyError, TypeError):
            continue  # "novalue"/"somevalue" snaks have no datavalue
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            out.append(value["id"])
    return tuple(out)


def _str_tuple(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise ValueError(f"{what!r} must be a list of strings")
    for v in value:
        if type(v) is not str:
            raise ValueError(f"{what!r} must be a list of strings")
    return tuple(value)


_decode = json.JSONDecoder().decode


def parse_line(line: str, lang: str = "en", lineno: int = 0) -> WikidataRecord | None:
    """One record from one line; None for array brackets, blank lines and items without a label."""
    text = line.rstrip()
    if text.endswith(","):
        text = text[:-1]
    if len(text) < 2:
        if text.strip() in ("", "[", "]"):
            return None
    doc = _decode(text)
    if type(doc) is not dict:
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    qid = doc.get("id")
    if type(qid) is not str or not qid:
        raise ValueError("missing 'id'")
    if "claims" in doc or "labels" in doc:  # official dump entity
        label = ((doc.get("labels") or {}).get(lang) or {}).get("value", "")
        aliases = tuple(a.get("value", "") for a in (doc.get("aliases") or {}).get(lang, ()) or ())
        desc = ((doc.get("descriptions") or {}).get(lang) or {}).get("value", "")
        claims = doc.get("claims") or {}
        sub, inst = _claim_ids(claims, "P279"), _claim_ids(claims, "P31")
    else:
        label = doc.get("label", "")
        if type(label) is not str:
            raise ValueError("'label' must be a string")
        aliases = _str_tuple(doc.get("aliases"), "aliases")
        sub = _str_tuple(doc.get("subclass_of"), "subclass_of")
        inst = _str_tuple(doc.get("instance_of"), "instance_of")
        desc = doc.get("description") or ""
        if type(desc) is not str:
            desc = ""
    if not label:
        return None
    return WikidataRecord(qid, label, aliases, sub, inst, desc, lineno)


def iter_wikidata(
    path: str | Path, lang: str = "en", errors: LineErrors | None = None
) -> Iterator[WikidataRecord]:
    """Stream records; a malformed line raises `WikidataLineError` unless `errors` collects it."""
    path = Path(path)
    try:
        fh = _open(path)
    except OSError as err:
        raise OntologyError(f"cannot read Wikidata file {path}: {err}") from None
    lineno = 0
    with fh:
        lines = iter(fh)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError) as err:  # truncated or corrupt compressed stream
                reason = f"unreadable after this line ({type(err).__name__}: {err})"
                if errors is None:
                    raise WikidataLineError(str(path), lineno + 1, reason) from None
                errors.add(lineno + 1, reason)
                return
            lineno += 1
            try:
                record = parse_line(raw.decode("utf-8"), lang, lineno)
            except (ValueError, AttributeError, TypeError) as err:  # UnicodeDecodeError is a ValueError
                reason = f"malformed line ({type(err).__name__}: {err})"[:300]
                if errors is None:
                    raise WikidataLineError(str(path), lineno, reason) from None
                errors.add(lineno, reason)
                continue
            if record is not None:
                yield record


@dataclass
class WikidataScan:
    """What one streaming pass saw: counts, not contents."""

    records: int = 0
    subclass_edges: int = 0
    instance_edges: int = 0
    roots: int = 0  # records with no subclass-of
    errors: LineErrors = field(default_factory=LineErrors)


def scan_wikidata(path: str | Path, lang: str = "en") -> WikidataScan:
    """Count records and edges in one pass, collecting malformed lines instead of failing."""
    scan = WikidataScan()
    for rec in iter_wikidata(path, lang, errors=scan.errors):
        scan.records += 1
        scan.subclass_edges += len(rec.subclass_of)
        scan.instance_edges += len(rec.instance_of)
        scan.roots += not rec.subclass_of
    return scan


def load_wikidata(
    path: str | Path,
    roots: Iterable[str] = (),
    include_instances: bool = False,
    lang: str = "en",
    errors: LineErrors | None = None,
) -> tuple[ConceptGraph, BuildReport]:
    """The items under `roots` (all items when empty) with subclass-of (and instance-of) as parents."""
    path, roots = Path(path), list(roots)
    keep: set[str] | None = None
    if roots:  # pass 1: edges only
        edges = [
            RawConcept(r.id, ["-"], list(r.subclass_of + (r.instance_of if include_instances else ())))
            for r in iter_wikidata(path, lang, errors=LineErrors() if errors is not None else None)
        ]
        keep = {c.id for c in restrict_to_roots(edges, roots)}
        del edges
    raw = []
    for rec in iter_wikidata(path, lang, errors=errors):  # pass 2: text of the kept items
        if keep is not None and rec.id not in keep:
            continue
        parents = list(rec.subclass_of + (rec.instance_of if include_instances else ()))
        if rec.instance_of and not rec.subclass_of and not include_instances:
            continue  # an individual (a person, a city), not a class
        raw.append(RawConcept(rec.id, [rec.label, *rec.aliases], parents, description=rec.description,
                              attrs={"qid": rec.id}))
    if not raw:
        raise OntologyError(f"{path}: no Wikidata classes found (roots {roots or 'all'})")
    return build_graph(raw, name=f"wikidata:{path.name}")
