"""LLM/MLLM proposers: ask a language model for noun phrases as JSON, validate, clean, count drops.

`LLMProposer(generator)` builds one prompt per media item (domain, caption, known positives and,
for a multimodal server, the image as a data URL), asks for `{"phrases": [...]}` under a JSON
schema, and drops anything off-schema with a `schema: ...` reason (a non-JSON answer drops the
whole answer; a non-string item drops that item). `similar_phrases(phrase)` asks for visually
similar but different concepts: the LLM half of hard-negative mining.

Generators: `OpenAIGenerator` (an OpenAI-compatible server such as `vllm serve`, structured output
via `response_format`) and `ontology.proposers.local_lm.LocalLMGenerator` (a transformers causal LM
from a folder, the schema stated in the prompt).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ontology.llm import ChatClient, LLMError, parse_structured
from ontology.proposers.base import BaseProposer, Dropped, Proposal, ProposalBatch, ProposalRequest

SYSTEM = (
    "You propose short noun phrases (1-4 words, lower case, singular, no articles) naming concrete, "
    "visible object categories that an image segmentation model can find. Answer only with JSON."
)


class PhraseList(BaseModel):
    phrases: list[Any]


def phrase_schema(max_items: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "phrases": {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": max_items}
        },
        "required": ["phrases"],
        "additionalProperties": False,
    }


class Generator(Protocol):
    name: str
    multimodal: bool

    def generate(self, messages: list[dict], schema: dict, name: str) -> str: ...


class OpenAIGenerator:
    multimodal = True

    def __init__(self, client: ChatClient, temperature: float = 0.7, max_tokens: int = 512):
        self.client, self.temperature, self.max_tokens = client, temperature, max_tokens
        self.name = f"openai:{client.model}"

    def generate(self, messages: list[dict], schema: dict, name: str) -> str:
        return self.client.chat_json(messages, schema, name, self.temperature, self.max_tokens)


def image_data_url(image: Any) -> str | None:
    """A data URL of the image (PNG/JPEG bytes, a path, or an HxWx3 uint8 array), or None."""
    if isinstance(image, (str, Path)) and Path(image).is_file():
        image = Path(image).read_bytes()
    if isinstance(image, (bytes, bytearray)):
        kind = "png" if bytes(image[:8]) == b"\x89PNG\r\n\x1a\n" else "jpeg"
        return f"data:image/{kind};base64," + base64.b64encode(bytes(image)).decode("ascii")
    try:
        import numpy as np
        from PIL import Image

        if isinstance(image, np.ndarray):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:
        return None
    return None


class LLMProposer(BaseProposer):
    def __init__(self, generator: Generator, per_image: int = 16, send_image: bool = True,
                 normaliser=None, name: str = "llm"):
        super().__init__(per_image, normaliser)
        self.generator, self.send_image, self.name = generator, send_image, name

    def _ask(self, text: str, image: Any = None, n: int | None = None) -> tuple[list[str], list[Dropped]]:
        n = n or self.per_image
        schema = phrase_schema(n)
        content: Any = text
        if image is not None and self.send_image and self.generator.multimodal:
            url = image_data_url(image)
            if url:
                content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
        self.stats["calls"] += 1
        try:
            answer = self.generator.generate(messages, schema, "noun_phrases")
        except (LLMError, OSError, RuntimeError, ValueError) as err:
            return [], [Dropped("", f"error: {err}")]
        parsed, reason = parse_structured(answer, PhraseList)
        if parsed is None:
            return [], [Dropped(answer[:200], reason or "schema: invalid")]
        good, bad = [], []
        for i, item in enumerate(parsed.phrases):  # type: ignore[union-attr]
            if isinstance(item, str):
                good.append(item)
            else:
                bad.append(Dropped(repr(item)[:80], f"schema: phrases.{i} is {type(item).__name__}, not a string"))
        if len(good) > n:
            bad += [Dropped(p, f"schema: more than maxItems={n}") for p in good[n:]]
            good = good[:n]
        return good, bad

    def propose_one(self, request: ProposalRequest) -> ProposalBatch:
        parts = [f"List up to {self.per_image} noun phrases for objects"]
        parts.append(" in this image." if request.image is not None and self.send_image else ".")
        if request.domain:
            parts.append(f" Domain: {request.domain}.")
        if request.caption:
            parts.append(f" Image description: {request.caption}")
        if request.positives:
            parts.append(f" Already labelled (do not repeat): {', '.join(request.positives)}.")
        phrases, dropped = self._ask("".join(parts), request.image)
        return self.finish(request, [Proposal(p, self.name) for p in phrases], dropped)

    def similar_phrases(self, phrase: str, n: int = 5, domain: str | None = None) -> tuple[list[str], list[Dropped]]:
        """Up to n phrases for concepts that look like `phrase` but are different things."""
        text = (f"Give up to {n} noun phrases naming objects that look visually similar to "
                f"{phrase!r} but are a different kind of thing (not synonyms, not a kind of {phrase!r}, "
                f"and {phrase!r} is not a kind of them).")
        if domain:
            text += f" Domain: {domain}."
        good, bad = self._ask(text, None, n)
        kept, rejected = [], list(bad)
        for g in good:
            norm = self.normaliser.normalise(g)
            if norm.ok:
                kept.append(norm.phrase)
            else:
                rejected.append(Dropped(g, norm.message))
        return kept, rejected
