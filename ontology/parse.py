"""Read a noun phrase against a concept graph: which words name which nodes, and which is the head.

`segment(graph, phrase)` matches the longest surface forms left to right (singular or plural:
"yellow school buses" -> [yellow] [school bus]); the last matched segment is the head noun and the
others are modifiers. Words that name no node are kept in `unknown`. The result supports the two
ontology operations the engine needs on phrases: swapping a segment for a related node
(hard-negative candidates) and deciding whether one phrase implies another (`implies`), used to keep
phrases that may be present on an image out of its negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

from ontology.graph import ConceptGraph
from ontology.normalise import singular

MAX_SPAN = 4


@dataclass(frozen=True)
class Segment:
    text: str
    node_id: str | None  # None: a word no node names


@dataclass(frozen=True)
class ParsedPhrase:
    phrase: str
    segments: tuple[Segment, ...]

    @property
    def head(self) -> str | None:
        """Node id of the last matched segment (the head noun), if it is the phrase's last word."""
        if self.segments and self.segments[-1].node_id is not None:
            return self.segments[-1].node_id
        return None

    @property
    def modifiers(self) -> tuple[str, ...]:
        return tuple(s.node_id for s in self.segments[:-1] if s.node_id is not None)

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.segments if s.node_id is None)

    def replace(self, index: int, text: str) -> str:
        """The phrase with segment `index` replaced by `text`."""
        words = [s.text for s in self.segments]
        words[index] = text
        return " ".join(words)


def _lookup(graph: ConceptGraph, words: list[str]) -> str | None:
    text = " ".join(words)
    node = graph.lookup(text)
    if node is None:
        sing = " ".join((*words[:-1], singular(words[-1])))
        if sing != text:
            node = graph.lookup(sing)
    return None if node is None else node.id


def segment(graph: ConceptGraph, phrase: str) -> ParsedPhrase:
    words = phrase.lower().split()
    segments: list[Segment] = []
    i = 0
    while i < len(words):
        for span in range(min(MAX_SPAN, len(words) - i), 0, -1):
            nid = _lookup(graph, words[i : i + span])
            if nid is not None:
                segments.append(Segment(" ".join(words[i : i + span]), nid))
                i += span
                break
        else:
            segments.append(Segment(words[i], None))
            i += 1
    return ParsedPhrase(phrase, tuple(segments))


def implies(graph: ConceptGraph, specific: ParsedPhrase, general: ParsedPhrase) -> bool:
    """True when everything `specific` denotes is also denoted by `general`.

    "red siamese cat" implies "cat" and "red cat" and "animal"; "cat" does not imply "red cat".
    Phrases with unknown words are compared literally (equal phrases only).
    """
    if specific.unknown or general.unknown or specific.head is None or general.head is None:
        return specific.phrase == general.phrase
    if not graph.is_a(specific.head, general.head):
        return False
    return all(any(graph.is_a(m, g) for m in specific.modifiers) for g in general.modifiers)
