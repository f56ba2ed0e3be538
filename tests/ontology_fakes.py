"""Test doubles for the ontology tests: a local OpenAI-compatible HTTP server and a GT-based predictor.

`FakeChatServer` is a real HTTP server (stdlib `http.server` in a thread on 127.0.0.1) that answers
`POST /v1/chat/completions` like vLLM's OpenAI server. It *checks* that every request carries a
JSON-schema `response_format` (HTTP 400 otherwise), records the requests, and replies with scripted
contents (strings, or a function of the request body).

`GTOffsetPredictor` is NOT a model: it stands in for one to test the adversarial check's logic only.
For a phrase it "predicts" the ground-truth masks of the world objects whose *shape* matches the
phrase's noun while ignoring colour, pattern and size (a detector that is colour-blind), shifted by
a few pixels, in the shape of `model.predictor` results.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from storage.masks import encode_rle


class FakeChatServer:
    def __init__(self, replies: list[str] | Callable[[dict], str]):
        self.replies = replies
        self.requests: list[dict] = []
        self.rejected: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                problem = server.check(self.path, body)
                if problem:
                    server.rejected.append(problem)
                    self._send(400, {"error": {"message": problem}})
                    return
                server.requests.append(body)
                content = server.next_reply(body)
                self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}]})

            def _send(self, code, doc):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @staticmethod
    def check(path: str, body: dict) -> str | None:
        if path != "/v1/chat/completions":
            return f"unexpected path {path}"
        rf = body.get("response_format") or {}
        if rf.get("type") != "json_schema":
            return "response_format.type must be json_schema"
        js = rf.get("json_schema") or {}
        if not js.get("name") or not isinstance(js.get("schema"), dict) or js["schema"].get("type") != "object":
            return "response_format.json_schema must carry a name and an object schema"
        if not body.get("messages"):
            return "no messages"
        return None

    def next_reply(self, body: dict) -> str:
        if callable(self.replies):
            return self.replies(body)
        return self.replies.pop(0) if self.replies else '{"phrases": []}'

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class _Inst:
    score: float
    rle: dict


@dataclass
class _Pair:
    phrase: str
    presence: float
    instances: list = field(default_factory=list)


@dataclass
class _Result:
    image_id: str
    pairs: list
    error: str | None = None


class GTOffsetPredictor:
    """Stand-in predictor for testing the adversarial check's logic (see module docstring)."""

    def __init__(self, scene, sem, shift: int = 2):
        self.scene, self.sem, self.shift = scene, sem, shift
        self.calls = 0

    def predict(self, items):
        out = []
        for image_id, _image, phrases in items:
            self.calls += 1
            pairs = []
            for phrase in phrases:
                head = self.sem.parse(phrase).head
                closure = self.sem.graph.closure(head)
                insts = []
                for obj in self.scene.objects:
                    if obj.attrs["shape"] in closure:
                        mask = np.roll(self.scene.mask(obj.id), self.shift, axis=1)
                        insts.append(_Inst(0.9, encode_rle(mask)))
                pairs.append(_Pair(phrase, 0.9 if insts else 0.05, insts))
            out.append(_Result(image_id, pairs))
        return out


_TINY = {}


def tiny_predictor(score_threshold: float = 0.5):
    """The real tiny SAM 3 (untrained, seed 0) behind `model.predictor.Predictor` (model built once)."""
    from model.predictor import Predictor

    if "model" not in _TINY:
        from model.presets import build_tiny

        _TINY["model"] = build_tiny(seed=0)
    return Predictor(_TINY["model"], batch_size=32, score_threshold=score_threshold)


class CountingPredictor:
    """Wraps a predictor and records each `predict` call's (image id, number of phrases)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def predict(self, items):
        items = list(items)
        self.calls += [(i[0], len(i[2])) for i in items]
        return self.inner.predict(items)
