"""The MLLM verifier backend: render like the paper, ask for one letter, un-shuffle, softmax.

`MLLMVerifier(task, scorer)` is a `Verifier` for "mv" or "ev" over any letter scorer
(`verifiers.mllm_scorers.OpenAIScorer` for vLLM / OpenAI-compatible servers, `LocalVLMScorer` for
a local transformers model). Per request it decodes the image (the request's, else
`media(media_id)`) and masks, renders them (`verifiers.render`), builds a prompt whose choice
letters are shuffled with a seed derived from (seed, task, media id, phrase, request id), scores
the first answer token, and turns the letters' log-probs into label probabilities
(`verifiers.prompts`). Requests are scored in one batch; any request that fails (bad image, server
error, no choice letter among the answer's top tokens) gets an error verdict with the reason.
The version id is `mllm:<scorer name>:p<prompt version>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from storage.masks import instance_to_mask
from verifiers.base import Request, Verdict, check_requests, error_verdict, make_verdict
from verifiers.labels import labels_for
from verifiers.prompts import (
    PROMPT_VERSION,
    build_prompt,
    label_probs,
    letter_logprobs,
    request_seed,
)
from verifiers.render import render_ev, render_mv


class MLLMVerifier:
    backend = "mllm"

    def __init__(
        self,
        task: str,
        scorer: Any,
        *,
        media: Callable[[str], Any] | None = None,
        seed: int = 0,
        panel: int = 384,
        version: str | None = None,
    ):
        labels_for(task)
        self.task, self.scorer, self.media, self.seed, self.panel = task, scorer, media, seed, panel
        self.version = (
            version or f"mllm:{getattr(scorer, 'name', type(scorer).__name__)}:p{PROMPT_VERSION}"
        )

    def render(self, request: Request, image) -> Any:
        masks = [instance_to_mask(m) for m in request.masks]
        if self.task == "mv":
            return render_mv(image, masks[0], panel=self.panel)
        return render_ev(image, masks)

    def prompt(self, request: Request):
        seed = request_seed(
            self.seed, self.task, request.media_id, request.phrase, request.request_id or ""
        )
        return build_prompt(self.task, request.phrase, seed)

    def verify(self, requests: Sequence[Request]) -> list[Verdict]:
        from model.preprocess import load_image

        requests = list(requests)
        check_requests(self.task, requests)
        out: list[Verdict | None] = [None] * len(requests)
        inputs, choices, index = [], [], []
        images: dict[str, Any] = {}
        for i, r in enumerate(requests):
            try:
                src = (
                    r.image
                    if r.image is not None
                    else (self.media(r.media_id) if self.media else None)
                )
                if src is None:
                    raise ValueError(f"no image for media {r.media_id!r}")
                if r.image is None and r.media_id in images:
                    img = images[r.media_id]
                else:
                    img = images[r.media_id] = load_image(src, r.media_id)
                rendered = self.render(r, img)
            except Exception as err:  # noqa: BLE001 - a bad item is an error verdict, not a failed batch
                out[i] = error_verdict(r, self.version, f"render: {err}")
                continue
            choice = self.prompt(r)
            inputs.append((rendered, choice.text))
            choices.append(choice)
            index.append(i)
        answers = self.scorer.score(inputs) if inputs else []
        for i, choice, answer in zip(index, choices, answers):
            r = requests[i]
            if isinstance(answer, Exception):
                out[i] = error_verdict(r, self.version, str(answer))
                continue
            try:
                probs = label_probs(letter_logprobs(answer, choice.offered), choice)
            except ValueError as err:
                out[i] = error_verdict(r, self.version, str(err))
                continue
            out[i] = make_verdict(r, probs, self.version)
        return out  # type: ignore[return-value]
