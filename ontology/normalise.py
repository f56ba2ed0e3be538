"""Noun-phrase cleaning: one canonical form per phrase, or a rejection with its reason.

`PhraseNormaliser.normalise(text)` lower-cases, folds whitespace (NFC), strips leading articles,
quantifiers and possessive determiners ("the", "two", "some", "his"), turns "dog's bowl" into
"dog bowl", and singularises the head noun with `inflect` ("yellow school buses" -> "yellow school
bus"; in "X of Y" the head is X: "bottles of water" -> "bottle of water"). It rejects, each with a
`reason` code and a message: `not_text`, `control_character`, `bad_character`, `empty`,
`too_short`, `too_long`, `too_many_words`, `non_groundable` (pronouns, positional words such as
"it", "middle", "left side"), `whole_image` ("the scene", "background") and `blocklisted`.
Limits and word lists are a pydantic config, so campaigns can tune them.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel, Field

ARTICLES = {"a", "an", "the"}
QUANTIFIERS = {
    "some", "several", "many", "few", "multiple", "various", "numerous", "all", "both", "each",
    "every", "any", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "these", "those",
}
QUANTIFIERS_OF = {"lots", "lot", "couple", "bunch", "dozen", "dozens", "number", "plenty", "handful"}
POSSESSIVE_DETERMINERS = {"my", "your", "his", "her", "its", "our", "their", "whose"}
PRONOUNS = {
    "it", "they", "them", "he", "she", "him", "her", "we", "us", "you", "i", "me", "this", "that",
    "these", "those", "something", "anything", "everything", "nothing", "someone", "somebody",
    "anyone", "everyone", "one", "ones", "stuff", "thing", "things", "itself", "themselves",
}
POSITIONAL = {
    "left", "right", "middle", "center", "centre", "top", "bottom", "side", "front", "back",
    "corner", "edge", "area", "part", "place", "spot", "region", "distance", "here", "there",
    "above", "below", "behind", "inside", "outside", "upper", "lower", "portion", "section",
}
WHOLE_IMAGE = {
    "image", "picture", "photo", "photograph", "scene", "background", "foreground", "view",
    "scenery", "setting", "frame", "shot", "screenshot", "landscape",
}
# Words inflect would wrongly singularise, or that are singular despite the final "s".
KEEP_AS_IS = {
    "scissors", "glasses", "sunglasses", "eyeglasses", "pants", "jeans", "shorts", "trousers",
    "binoculars", "pliers", "tongs", "headphones", "earphones", "goggles", "clothes", "tights",
    "leggings", "pajamas", "pyjamas", "overalls", "tennis", "dice", "chess", "news", "axis",
    "species", "series", "people",
}
_ALLOWED_PUNCT = set(" -'&.,/+")


class NormaliserConfig(BaseModel):
    """Limits and word lists of the normaliser (all optional)."""

    min_chars: int = Field(2, ge=1)
    max_chars: int = Field(60, ge=1)
    max_words: int = Field(6, ge=1)
    singularise: bool = True
    blocklist: list[str] = Field(default_factory=list, description="words or whole phrases to reject")
    extra_non_groundable: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Normalised:
    """A phrase's canonical form (`phrase`), or its rejection (`phrase` None, `reason`, `message`)."""

    original: str
    phrase: str | None
    reason: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.phrase is not None


@dataclass
class NormaliseReport:
    """What a batch of phrases became: kept (unique, in order), rejections and counts by reason."""

    kept: list[str] = field(default_factory=list)
    rejected: list[Normalised] = field(default_factory=list)
    duplicates: int = 0

    @property
    def reasons(self) -> Counter:
        return Counter(r.reason for r in self.rejected)


@lru_cache(maxsize=1)
def _inflect():
    """inflect's engine, imported without typeguard instrumentation.

    inflect decorates its API with `typeguard.typechecked`, which re-parses and recompiles the
    functions at import (5-20 s on a busy 2-core machine) and type-checks every call. The checks
    only guard inflect's own argument types, so the decorator is a no-op while inflect imports
    (as under `python -O`), then restored.
    """
    import sys

    if "inflect" not in sys.modules:
        import typeguard

        original = typeguard.typechecked

        def _no_instrumentation(target=None, **_kwargs):
            return target if target is not None else (lambda f: f)

        typeguard.typechecked = _no_instrumentation
        try:
            import inflect
        finally:
            typeguard.typechecked = original
    import inflect

    return inflect.engine()


@lru_cache(maxsize=65536)
def singular(word: str, strict: bool = True) -> str:
    """The singular of a (possibly plural) noun; unknown or already singular words are kept.

    `strict=False` also singularises words that are usually plural-only ("glasses of wine").
    """
    if (strict and word in KEEP_AS_IS) or len(word) < 3 or not word.isalpha():
        return word
    p = _inflect()
    s = p.singular_noun(word)
    if not s:
        return word
    if not word.endswith("s"):
        return s  # irregular: mice, teeth, children
    plural = p.plural_noun(word)
    if plural and plural != word and p.singular_noun(plural) == word:
        return word  # "bus", "lens", "cactus": the word is itself a singular
    return s


class PhraseNormaliser:
    """Canonicalises or rejects noun phrases; see the module docstring for the rules."""

    def __init__(self, config: NormaliserConfig | dict | None = None):
        self.config = config if isinstance(config, NormaliserConfig) else NormaliserConfig(**(config or {}))
        self._blocklist = {" ".join(b.lower().split()) for b in self.config.blocklist}
        self._non_groundable = PRONOUNS | POSITIONAL | {w.lower() for w in self.config.extra_non_groundable}

    def _reject(self, original: str, reason: str, message: str) -> Normalised:
        return Normalised(original, None, reason, f"{reason}: {message}")

    def normalise(self, text: object) -> Normalised:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                return self._reject(repr(text), "not_text", f"{text!r:.60} is not UTF-8")
        if not isinstance(text, str):
            return self._reject(repr(text), "not_text", f"expected a string, got {type(text).__name__}")
        original = text
        for ch in text:
            if unicodedata.category(ch)[0] == "C" and ch not in "\t\n\r":
                return self._reject(original, "control_character", f"{text!r:.60} contains {ch!r}")
        text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
        text = " ".join(text.split()).strip(" .,")
        bad = sorted({ch for ch in text if not (ch.isalnum() or ch in _ALLOWED_PUNCT)})
        if bad:
            return self._reject(original, "bad_character", f"{text!r:.60} contains {''.join(bad)!r}")
        if len(text) > self.config.max_chars:
            return self._reject(original, "too_long", f"{len(text)} characters (max {self.config.max_chars})")
        words = [w.strip(",") for w in text.split(" ") if w.strip(",")]
        if self._blocked(words):
            return self._reject(original, "blocklisted", f"{text!r} is on the blocklist")
        while words:
            if words[0] in ARTICLES or words[0] in QUANTIFIERS or words[0] in POSSESSIVE_DETERMINERS \
                    or words[0].isdigit():
                words = words[1:]
            elif words[0] in QUANTIFIERS_OF and words[1:2] == ["of"]:
                words = words[2:]
            else:
                break
        # possessives: "dog's bowl" -> "dog bowl", "cats' toys" -> "cat toys"
        words = [w[:-2] if w.endswith("'s") else singular(w[:-1]) if w.endswith("'") else w for w in words]
        words = [w for w in words if w]
        if not words:
            return self._reject(original, "empty", f"{original!r:.60} has no content words")
        if len(words) > self.config.max_words:
            return self._reject(original, "too_many_words", f"{len(words)} words (max {self.config.max_words})")
        head_at = words.index("of") - 1 if "of" in words[1:] else len(words) - 1
        head = words[head_at]
        if head in WHOLE_IMAGE:
            return self._reject(original, "whole_image", f"{' '.join(words)!r} describes the whole image")
        if head in self._non_groundable or all(w in self._non_groundable for w in words):
            return self._reject(original, "non_groundable", f"{head!r} is a pronoun or a position, not an object")
        if self.config.singularise:
            words[head_at] = singular(head) if head_at == len(words) - 1 else singular(head, strict=False)
        phrase = " ".join(words)
        if self._blocked(words):
            return self._reject(original, "blocklisted", f"{phrase!r} is on the blocklist")
        if len(phrase) < self.config.min_chars or not any(ch.isalpha() for ch in phrase):
            return self._reject(original, "too_short", f"{phrase!r} (min {self.config.min_chars} characters)")
        return Normalised(original, phrase)

    def _blocked(self, words: list[str]) -> bool:
        if not self._blocklist:
            return False
        if " ".join(words) in self._blocklist:
            return True
        return any(w in self._blocklist or singular(w) in self._blocklist for w in words)

    def normalise_many(self, texts: Iterable[object]) -> NormaliseReport:
        """Normalise a batch: unique kept phrases in first-seen order, every rejection with its reason."""
        report = NormaliseReport()
        seen: set[str] = set()
        for text in texts:
            result = self.normalise(text)
            if not result.ok:
                report.rejected.append(result)
            elif result.phrase in seen:
                report.duplicates += 1
            else:
                seen.add(result.phrase)
                report.kept.append(result.phrase)
        return report


def normalise(text: object) -> Normalised:
    """Normalise with the default configuration."""
    return _default().normalise(text)


@lru_cache(maxsize=1)
def _default() -> PhraseNormaliser:
    return PhraseNormaliser()


