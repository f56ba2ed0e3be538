"""A local transformers causal LM as a phrase generator (no server): loaded from a folder.

`LocalLMGenerator(model_dir)` loads `AutoTokenizer` and `AutoModelForCausalLM` from a local folder
(offline), renders the chat with the tokenizer's chat template when it has one (else plain
"role: text" lines), states the JSON schema in the prompt (a local `generate` has no constrained
decoding) and returns the decoded continuation. Output that is not valid JSON is dropped by
`LLMProposer` with its reason. Text only: images are not sent.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class LocalLMGenerator:
    multimodal = False

    def __init__(self, model_dir: str | Path, max_new_tokens: int = 128, temperature: float = 0.7,
                 seed: int = 0, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no transformers model in {path} (config.json missing)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForCausalLM.from_pretrained(str(path)).to(device).eval()
        self.device, self.max_new_tokens, self.temperature, self.seed = device, max_new_tokens, temperature, seed
        self.name = f"local:{path.name}"
        self._torch = torch
        self._lock = threading.Lock()

    def _prompt(self, messages: list[dict], schema: dict) -> str:
        msgs = [dict(m) for m in messages]
        msgs[-1]["content"] = (f"{msgs[-1]['content']}\nAnswer with one JSON object matching this "
                               f"JSON schema: {json.dumps(schema)}")
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\nassistant: "

    def generate(self, messages: list[dict], schema: dict, name: str) -> str:
        torch = self._torch
        text = self._prompt(messages, schema)
        enc = self.tokenizer(text, return_tensors="pt").to(self.device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            torch.manual_seed(self.seed)
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                pad_token_id=pad,
            )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
