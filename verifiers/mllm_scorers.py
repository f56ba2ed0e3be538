"""Letter scorers for MLLM verifiers: one image + prompt in, the first answer token's log-probs out.

- `OpenAIScorer(base_url, model)`: POSTs `/chat/completions` to an OpenAI-compatible server
  (`vllm serve <vision model>`, or OpenAI) with the image as a base64 PNG data URL, `max_tokens: 1`,
  `temperature: 0`, `logprobs: true` and `top_logprobs` (vLLM's default cap is 20), and returns
  `choices[0].logprobs.content[0].top_logprobs`. Requests of a batch run concurrently (the server
  batches them); transport errors and 5xx answers are retried; a failed request is returned as its
  exception so one bad item never fails the batch.
- `LocalVLMScorer(model_dir)`: a local transformers vision-language model (`AutoProcessor` +
  `AutoModelForImageTextToText`: LLaVA, Qwen2-VL, Idefics3, Mllama, ...) run on a padded batch; the
  next-token log-softmax at the last position gives every letter's log-prob, including variants
  with a leading space when the tokenizer has them as single tokens.
Both return, per input, a list of (token, logprob) pairs (`verifiers.prompts.letter_logprobs` reads
them) or an Exception.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image


class ScorerError(RuntimeError):
    """The model could not be asked (server unreachable, HTTP error, malformed answer)."""


def png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIScorer:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        top_logprobs: int = 20,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        concurrency: int = 8,
        extra_body: dict[str, Any] | None = None,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.top_logprobs = model, int(top_logprobs)
        self.api_key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        self.timeout_s, self.max_retries, self.concurrency = (
            timeout_s,
            max_retries,
            max(1, concurrency),
        )
        self.extra_body = dict(extra_body or {})
        self.name = f"openai:{model}"

    def body(self, image: Image.Image, prompt: str) -> dict:
        return {
            "model": self.model,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": png_data_url(image)}},
                        {"type": "text", "text": prompt},
                    ],
                }
            ],
            **self.extra_body,
        }

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception = ScorerError(f"no attempt made to {self.url}")
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as err:
                last = ScorerError(
                    f"{self.url} answered HTTP {err.code}: {err.read().decode('utf-8', 'replace')[:300]}"
                )
                if err.code < 500:
                    raise last from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = ScorerError(f"cannot reach {self.url}: {err}")
            except json.JSONDecodeError as err:
                raise ScorerError(f"{self.url} did not answer JSON: {err}") from None
            time.sleep(min(0.2 * 2**attempt, 2.0))
        raise last

    def _one(self, image: Image.Image, prompt: str):
        try:
            doc = self._post(self.body(image, prompt))
            content = doc["choices"][0]["logprobs"]["content"]
            if not content:
                raise ScorerError("the answer has no tokens")
            first = content[0]
            top = first.get("top_logprobs") or [
                {"token": first["token"], "logprob": first["logprob"]}
            ]
            return [(t["token"], t["logprob"]) for t in top]
        except ScorerError as err:
            return err
        except (KeyError, IndexError, TypeError) as err:
            return ScorerError(
                f"{self.url}: answer without logprobs ({type(err).__name__}: {err}); "
                "does the server support logprobs/top_logprobs?"
            )

    def score(self, inputs: Sequence[tuple[Image.Image, str]]) -> list:
        if len(inputs) <= 1 or self.concurrency == 1:
            return [self._one(*x) for x in inputs]
        with ThreadPoolExecutor(min(self.concurrency, len(inputs))) as pool:
            return list(pool.map(lambda x: self._one(*x), inputs))


class LocalVLMScorer:
    def __init__(
        self,
        model_dir: str,
        *,
        device: str = "cpu",
        dtype: Any = None,
        batch_size: int = 8,
        letters: str = "ABCDEFGHIJ",
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise FileNotFoundError(f"{model_dir} is not a model folder (no config.json)")
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.processor.tokenizer.padding_side = "left"
        self.model = (
            AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype or torch.float32)
            .to(device)
            .eval()
        )
        self.device, self.batch_size = device, max(1, batch_size)
        self.name = f"local:{os.path.basename(os.path.normpath(model_dir))}"
        tok = self.processor.tokenizer
        self.variants: list[tuple[str, int]] = []
        for letter in letters:
            for form in (letter, " " + letter):
                ids = tok.encode(form, add_special_tokens=False)
                if (
                    len(ids) == 1
                    and ids[0] != tok.unk_token_id
                    and (letter, ids[0]) not in self.variants
                ):
                    self.variants.append((letter, ids[0]))

    def score(self, inputs: Sequence[tuple[Image.Image, str]]) -> list:
        import torch

        out: list = []
        for i in range(0, len(inputs), self.batch_size):
            chunk = inputs[i : i + self.batch_size]
            msgs = [
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "image": img},
                            {"type": "text", "text": text},
                        ],
                    }
                ]
                for img, text in chunk
            ]
            try:
                batch = self.processor.apply_chat_template(
                    msgs,
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                    return_tensors="pt",
                    processor_kwargs={"padding": True},
                ).to(self.device)
                with torch.inference_mode():
                    logits = self.model(**batch).logits[:, -1, :].float()
                logp = torch.log_softmax(logits, dim=-1).cpu()
            except Exception as err:  # noqa: BLE001 - one failed batch becomes failed items
                out += [ScorerError(f"{self.name}: {type(err).__name__}: {err}")] * len(chunk)
                continue
            for row in logp:
                out.append([(letter, float(row[tid])) for letter, tid in self.variants])
        return out
