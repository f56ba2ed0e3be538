"""The engine's record types: instances, pairs and samples, and deterministic pair ids.

A *pair* is (media item, noun phrase); it ends positive (instance masks), negative (concept verified
absent) or dropped (with a reason). These models are the one schema that WebDataset shards, Parquet
tables and SA-Co JSON are written from and read back into.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

PairLabel = Literal["positive", "negative", "dropped"]
MAX_PHRASE_CHARS = 200


class PhraseError(ValueError):
    """A noun phrase that cannot be stored (bad encoding, control characters, empty, too long)."""


def validate_phrase(phrase: str | bytes) -> str:
    """Return the phrase as clean text, or raise PhraseError naming the phrase and the reason."""
    if isinstance(phrase, bytes):
        try:
            phrase = phrase.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PhraseError(f"phrase {phrase!r} is not valid UTF-8: {err}") from None
    if not isinstance(phrase, str):
        raise PhraseError(f"phrase {phrase!r} is not text (got {type(phrase).__name__})")
    for ch in phrase:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise PhraseError(f"phrase {phrase!r} contains a control or non-printable character {ch!r}")
    if not phrase.strip():
        raise PhraseError(f"phrase {phrase!r} is empty")
    if len(phrase) > MAX_PHRASE_CHARS:
        raise PhraseError(f"phrase {phrase[:40]!r}... is {len(phrase)} characters (max {MAX_PHRASE_CHARS})")
    return phrase


def normalise_phrase(phrase: str | bytes) -> str:
    """Lower-case, NFC and single spaces: the form that pair ids are computed from."""
    text = unicodedata.normalize("NFC", validate_phrase(phrase))
    return re.sub(r"\s+", " ", text).strip().lower()


def pair_id(media_id: str, phrase: str) -> str:
    """Deterministic id of a (media item, noun phrase) pair: the same inputs give the same id."""
    digest = hashlib.sha1(f"{media_id}\x1f{normalise_phrase(phrase)}".encode()).hexdigest()
    return digest[:16]


class Instance(BaseModel):
    """One instance mask: COCO compressed RLE at the image's size, pixel xywh box, crowd flag."""

    rle: dict = Field(description="COCO RLE {'size': [h, w], 'counts': str}")
    bbox: list[float] = Field(description="[x, y, w, h] in pixels")
    iscrowd: bool = False
    source: str = Field("human", description="who made the mask: human | ai | model | gt | synthetic")
    score: float | None = None

    @field_validator("rle")
    @classmethod
    def _rle_shape(cls, rle: dict) -> dict:
        if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
            raise ValueError(f"rle must be a dict with 'size' and 'counts', got {rle!r:.80}")
        if len(rle["size"]) != 2:
            raise ValueError(f"rle size must be [h, w], got {rle['size']!r}")
        if isinstance(rle["counts"], bytes):
            rle = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
        return rle

    @field_validator("bbox")
    @classmethod
    def _bbox_shape(cls, bbox: list[float]) -> list[float]:
        if len(bbox) != 4:
            raise ValueError(f"bbox must be [x, y, w, h], got {bbox!r}")
        return bbox


class Lineage(BaseModel):
    """Where a label came from: model and verifier versions, and whether a human or AI decided."""

    source: str = Field("human", description="human | ai | synthetic | gt")
    model_version: str | None = None
    verifier_versions: dict[str, str] = Field(default_factory=dict)
    campaign: str | None = None
    phase: int | None = None


class Pair(BaseModel):
    """A (media item, noun phrase) pair and its outcome."""

    media_id: str
    phrase: str
    label: PairLabel
    reason: str | None = None
    is_instance_exhaustive: bool = True
    is_pixel_exhaustive: bool = True
    instances: list[Instance] = Field(default_factory=list)
    lineage: Lineage = Field(default_factory=Lineage)

    @field_validator("phrase", mode="before")
    @classmethod
    def _clean_phrase(cls, phrase: str | bytes) -> str:
        return validate_phrase(phrase)

    @model_validator(mode="after")
    def _label_matches_instances(self) -> Pair:
        if self.label == "positive" and not self.instances:
            raise ValueError(f"pair {self.media_id!r}/{self.phrase!r} is positive but has no instances")
        if self.label == "negative" and self.instances:
            raise ValueError(f"pair {self.media_id!r}/{self.phrase!r} is negative but has instances")
        if self.label == "dropped" and not self.reason:
            raise ValueError(f"pair {self.media_id!r}/{self.phrase!r} is dropped without a reason")
        return self

    @property
    def pair_id(self) -> str:
        return pair_id(self.media_id, self.phrase)


class Sample(BaseModel):
    """One training sample: an image (original bytes) and every pair labelled on it."""

    key: str
    image: bytes
    image_ext: str = "png"
    width: int
    height: int
    pairs: list[Pair] = Field(default_factory=list)

    @model_validator(mode="after")
    def _masks_match_image(self) -> Sample:
        for pair in self.pairs:
            for inst in pair.instances:
                h, w = inst.rle["size"]
                if (h, w) != (self.height, self.width):
                    raise ValueError(
                        f"sample {self.key!r} pair {pair.phrase!r}: mask size {w}x{h} does not match "
                        f"image size {self.width}x{self.height}"
                    )
        return self
