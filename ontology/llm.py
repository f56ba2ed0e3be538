"""A minimal client for OpenAI-compatible chat servers (`vllm serve`, OpenAI, ...) with JSON-schema output.

`ChatClient.chat_json(messages, schema, name)` POSTs `/chat/completions` with
`response_format = {"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}` (the
OpenAI structured-outputs form, which vLLM's server accepts too) plus any `extra_body` fields, and
returns the message content. Transport errors and non-2xx answers raise `LLMError` (5xx and
connection errors are retried). `parse_structured` validates content against a pydantic model and
returns (object, None) or (None, reason): malformed model output is a reason, never an exception.

`LLMJudge` confirms phrase -> node mappings by asking the model to pick one candidate id (enum) or
"none".
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ontology.graph import ConceptGraph


class LLMError(RuntimeError):
    """The server could not be reached or answered with an error."""


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 2,
        extra_body: dict[str, Any] | None = None,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.extra_body = dict(extra_body or {})
        self.requests = 0

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")[:300]
                last = LLMError(f"{self.url} answered HTTP {err.code}: {detail}")
                if err.code < 500:
                    raise last from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = LLMError(f"cannot reach {self.url}: {err}")
            except json.JSONDecodeError as err:
                raise LLMError(f"{self.url} did not answer JSON: {err}") from None
            time.sleep(min(0.2 * 2**attempt, 2.0))
        raise last  # type: ignore[misc]

    def chat_json(
        self,
        messages: list[dict],
        schema: dict,
        name: str,
        temperature: float = 0.7,
        max_tokens: int = 512,
    ) -> str:
        """The assistant message content of one structured-output chat completion."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            },
            **self.extra_body,
        }
        answer = self._post(body)
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.url}: no choices[0].message.content in {str(answer)[:200]!r}") from None
        if not isinstance(content, str):
            raise LLMError(f"{self.url}: message content is {type(content).__name__}, not text")
        return content


def parse_structured(content: str, model: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """Validate model output against `model`; (None, reason) when it is not valid JSON or off-schema."""
    text = content.strip()
    if text.startswith("```"):  # fenced output from models without constrained decoding
        text = text.strip("`")
        text = text[text.find("{"):] if "{" in text else text
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None, f"schema: no JSON object in output {content[:60]!r}"
    try:
        doc = json.loads(text[start : end + 1])
    except json.JSONDecodeError as err:
        return None, f"schema: invalid JSON ({err.msg} at char {err.pos})"
    try:
        return model.model_validate(doc), None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "<root>"
        return None, f"schema: {where}: {first.get('msg')}"


def _judge_model(ids: Sequence[str]) -> tuple[type[BaseModel], dict]:
    choices = [*ids, "none"]
    schema = {
        "type": "object",
        "properties": {"choice": {"type": "string", "enum": choices}},
        "required": ["choice"],
        "additionalProperties": False,
    }

    class Choice(BaseModel):
        choice: str

    return Choice, schema


class LLMJudge:
    """Picks which candidate node a phrase denotes (or none) with one structured chat call."""

    def __init__(self, client: ChatClient, temperature: float = 0.0):
        self.client, self.temperature = client, temperature
        self.failures: list[str] = []

    def choose(self, phrase: str, candidates: Sequence, graph: ConceptGraph) -> str | None:
        ids = [c.node_id for c in candidates]
        model, schema = _judge_model(ids)
        lines = []
        for c in candidates:
            node = graph.node(c.node_id)
            syn = f" (also: {', '.join(node.synonyms[:4])})" if node.synonyms else ""
            desc = f" - {node.description[:120]}" if node.description else ""
            lines.append(f"{c.node_id}: {node.name}{syn}{desc}")
        messages = [
            {"role": "system", "content": "You map noun phrases to ontology concepts. Answer in JSON."},
            {"role": "user", "content": (
                f"Noun phrase: {phrase!r}\nCandidate concepts:\n" + "\n".join(lines)
                + "\nWhich concept does the phrase name (the phrase is an instance or synonym of it)? "
                "Answer with its id, or \"none\" if none fits."
            )},
        ]
        content = self.client.chat_json(messages, schema, "concept_choice", self.temperature, 64)
        parsed, reason = parse_structured(content, model)
        if parsed is None or parsed.choice not in (*ids, "none"):  # type: ignore[union-attr]
            self.failures.append(reason or f"choice {getattr(parsed, 'choice', None)!r} not allowed")
            raise ValueError(self.failures[-1])
        return None if parsed.choice == "none" else parsed.choice  # type: ignore[union-attr]
