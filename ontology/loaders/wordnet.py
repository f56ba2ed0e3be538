"""WordNet 3.0 noun hierarchy as a `ConceptGraph`, read straight from the database files.

Debian's `wordnet-base` installs the Princeton database in `/usr/share/wordnet` (`data.noun`,
`index.noun`). Each noun synset becomes a node: id in nltk's style (`dog.n.01`: first lemma and its
sense number), lemmas as name and synonyms (underscores to spaces, lower case), hypernyms (`@`, and
with `include_instances` instance hypernyms `@i`) as parents, the lexicographer file (`animal`,
`artifact`, `food`, ...) as its domain and the gloss as its description. A lemma that names several
synsets is a synonym of its most frequent sense (the order of `index.noun`) and stays in
`attrs["other_forms"]` of the others (see `ontology.loaders.common`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ontology.graph import ConceptGraph, OntologyError
from ontology.loaders.common import BuildReport, RawConcept, build_graph, restrict_to_roots

DEFAULT_DIR = Path(os.environ.get("WORDNET_DIR", "/usr/share/wordnet"))

# Lexicographer file numbers 03-28 are the noun files (WordNet's lexnames(5WN)).
NOUN_LEXNAMES = (
    "Tops act animal artifact attribute body cognition communication event feeling food group "
    "location motive object person phenomenon plant possession process quantity relation shape state "
    "substance time"
).split()


def _lexname(num: int) -> str:
    return NOUN_LEXNAMES[num - 3] if 3 <= num < 3 + len(NOUN_LEXNAMES) else f"lex{num:02d}"


def _form(lemma: str) -> str:
    if lemma.endswith(")") and "(" in lemma:  # syntactic markers like (a) only occur on adjectives
        lemma = lemma[: lemma.rindex("(")]
    return lemma.replace("_", " ").lower()


def read_index(path: Path) -> dict[str, list[str]]:
    """`index.noun`: lemma -> synset offsets, most frequent sense first."""
    senses: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith(" ") or not line.strip():
                continue
            parts = line.split()
            try:
                count = int(parts[2])
                offsets = parts[-count:]
                if count < 1 or not all(o.isdigit() for o in offsets):
                    raise ValueError("bad synset offsets")
            except (IndexError, ValueError) as err:
                raise OntologyError(f"{path}:{lineno}: malformed index line ({err}): {line[:80]!r}") from None
            senses[parts[0].replace("_", " ")] = offsets
    return senses


def iter_synsets(path: Path) -> Iterator[tuple[str, int, list[str], list[str], list[str], str]]:
    """`data.noun` records: (offset, lexfile number, lemmas, hypernyms, instance hypernyms, gloss)."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith(" ") or not line.strip():
                continue
            head, _, gloss = line.partition(" | ")
            parts = head.split()
            try:
                offset, lexnum, pos = parts[0], int(parts[1]), parts[2]
                n_words = int(parts[3], 16)
                lemmas = parts[4 : 4 + 2 * n_words : 2]
                i = 4 + 2 * n_words
                n_ptrs = int(parts[i])
                hypernyms, instance_of = [], []
                for k in range(n_ptrs):
                    symbol, target, tpos = parts[i + 1 + 4 * k : i + 4 + 4 * k]
                    if tpos == "n" and symbol == "@":
                        hypernyms.append(target)
                    elif tpos == "n" and symbol == "@i":
                        instance_of.append(target)
                if pos != "n" or len(lemmas) != n_words or not n_words:
                    raise ValueError("not a noun synset record")
            except (IndexError, ValueError) as err:
                raise OntologyError(f"{path}:{lineno}: malformed synset line ({err}): {line[:80]!r}") from None
            yield offset, lexnum, lemmas, hypernyms, instance_of, gloss.strip()


def load_wordnet(
    directory: str | Path | None = None,
    roots: Iterable[str] = (),
    include_instances: bool = False,
) -> ConceptGraph:
    """The noun hierarchy (optionally only under `roots`, given as ids like `animal.n.01`)."""
    graph, _ = load_wordnet_with_report(directory, roots, include_instances)
    return graph


def load_wordnet_with_report(
    directory: str | Path | None = None,
    roots: Iterable[str] = (),
    include_instances: bool = False,
) -> tuple[ConceptGraph, BuildReport]:
    base = Path(directory) if directory is not None else DEFAULT_DIR
    data, index = base / "data.noun", base / "index.noun"
    for f in (data, index):
        if not f.is_file():
            raise OntologyError(
                f"WordNet file {f} not found: install Debian's wordnet-base "
                "(scripts/install-system.sh wordnet-base) or pass the database folder"
            )
    senses = read_index(index)
    sense_rank = {(lemma, off): i for lemma, offs in senses.items() for i, off in enumerate(offs)}

    records = list(iter_synsets(data))
    ids: dict[str, str] = {}
    for offset, _, lemmas, *_ in records:
        first = _form(lemmas[0])
        ids[offset] = f"{first.replace(' ', '_')}.n.{sense_rank.get((first, offset), 0) + 1:02d}"
    first_lemma = {off: _form(lemmas[0]) for off, _, lemmas, *_ in records}
    raw: list[RawConcept] = []
    for offset, lexnum, lemmas, hypernyms, instance_of, gloss in records:
        if instance_of and not hypernyms and not include_instances:
            continue
        parents = hypernyms + (instance_of if include_instances else [])
        hint = first_lemma.get(parents[0], "") if parents else ""
        raw.append(
            RawConcept(
                id=ids[offset],
                forms=[_form(lemma) for lemma in lemmas],
                parents=[ids[p] for p in parents if p in ids],
                domains=(_lexname(lexnum),),
                description=gloss,
                hint=hint,
                attrs={"offset": offset},
            )
        )
    roots = list(roots)
    if roots:
        raw = restrict_to_roots(raw, roots)
    kept = {c.id for c in raw}
    preferred: dict[str, str] = {}
    for lemma, offs in senses.items():  # most frequent sense inside the extract
        best = next((ids[o] for o in offs if o in ids and ids[o] in kept), None)
        if best is not None:
            preferred[lemma] = best
    name = "wordnet-3.0-nouns" + (f"[{','.join(roots)}]" if roots else "")
    return build_graph(raw, name=name, preferred_owner=preferred)
