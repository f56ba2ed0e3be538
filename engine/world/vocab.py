"""The shapes world's vocabulary: its ontology, facets, and what each domain draws from.

The ontology (`ontology/data/shapes.yaml`) is the single source of truth for which shapes, colours,
patterns and sizes exist and in which domain; this module adds what only rendering needs (RGB values,
size ranges) and the per-domain visual style. Every leaf of the ontology must have a renderer
(`engine.world.shapes`, `engine.world.textures`); `check_renderable()` says which one is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ontology.graph import ConceptGraph, load_bundled

HEAD = "shape"  # the root of the nouns
FACETS = ("size", "pattern", "colour")  # modifier roots, in the order an NP lists them
ATTRIBUTES = ("shape", *FACETS)

COLOURS_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 130, 20),
    "yellow": (245, 215, 25),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (130, 45, 175),
    "pink": (245, 110, 190),
    "white": (245, 245, 245),
}

# Object circumradius as a fraction of the image side, per size value (disjoint ranges).
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.04, 0.065), "large": (0.10, 0.17)}
CROWD_RADIUS = (0.03, 0.04)  # members of an unseparable cluster (all "small")


@dataclass(frozen=True)
class DomainStyle:
    """How a domain looks: its background family and the ink used for background clutter."""

    name: str
    background: str  # key into textures.BACKGROUNDS
    clutter_rgb: tuple[int, int, int]
    noise_sigma: float = 3.0


DOMAIN_STYLES: dict[str, DomainStyle] = {
    "base": DomainStyle("base", background="paper", clutter_rgb=(120, 115, 105)),
    "night": DomainStyle("night", background="night_sky", clutter_rgb=(70, 90, 140), noise_sigma=4.0),
}


@lru_cache(maxsize=1)
def world_graph() -> ConceptGraph:
    """The bundled shapes ontology (loaded once)."""
    return load_bundled("shapes")


@dataclass(frozen=True)
class Vocabulary:
    """The attribute values one domain draws objects from (node ids of the ontology)."""

    domain: str
    shape: tuple[str, ...]
    colour: tuple[str, ...]
    pattern: tuple[str, ...]
    size: tuple[str, ...]
    style: DomainStyle

    def values(self, attribute: str) -> tuple[str, ...]:
        return getattr(self, attribute)


class UnknownDomainError(ValueError):
    """A domain name the world does not have."""


@lru_cache(maxsize=None)
def vocabulary(domain: str) -> Vocabulary:
    """The shapes, colours, patterns and sizes of `domain`, read from the ontology."""
    graph = world_graph()
    if domain not in DOMAIN_STYLES or domain not in graph.domains:
        raise UnknownDomainError(
            f"unknown world domain {domain!r} (available: {sorted(set(DOMAIN_STYLES) & set(graph.domains))})"
        )
    values = {
        attr: tuple(n for n in graph.leaves(attr) if graph.in_domain(n, domain)) for attr in ATTRIBUTES
    }
    return Vocabulary(domain=domain, style=DOMAIN_STYLES[domain], **values)


def domains() -> tuple[str, ...]:
    return tuple(d for d in world_graph().domains if d in DOMAIN_STYLES)


def check_renderable() -> list[str]:
    """Names of ontology leaves that have no renderer (empty when the world is consistent)."""
    from engine.world.shapes import SHAPES
    from engine.world.textures import PATTERNS

    graph = world_graph()
    table = {"shape": SHAPES, "pattern": PATTERNS, "colour": COLOURS_RGB, "size": SIZE_RANGES}
    return [f"{attr}:{leaf}" for attr, known in table.items() for leaf in graph.leaves(attr) if leaf not in known]
