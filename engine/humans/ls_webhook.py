"""A small HTTP receiver for Label Studio webhooks (annotation created / updated), in a thread.

`WebhookReceiver(handler, token)` serves `POST /label-studio/webhook` with uvicorn on a background
thread; each event whose `X-Sam3-Webhook-Token` header matches `token` is passed to
`handler(payload)`. Events with a wrong or missing token get 403 and are not handled. `url` is
where it listens (give Label Studio `public_url` when it reaches this machine by another name).
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request

log = logging.getLogger(__name__)
PATH = "/label-studio/webhook"
TOKEN_HEADER = "x-sam3-webhook-token"


def webhook_app(handler: Callable[[dict], None], token: str):
    """The FastAPI app: one POST route that checks the token and hands the JSON payload over."""
    app = FastAPI(title="sam3-engine Label Studio webhook", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(PATH)
    async def receive(request: Request) -> dict:
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=403, detail="bad or missing webhook token")
        try:
            payload = await request.json()
        except ValueError:
            raise HTTPException(status_code=400, detail="webhook body is not JSON") from None
        if not isinstance(payload, dict):
            raise HTTPException(status_code=400, detail="webhook body is not a JSON object")
        handler(payload)
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "UP"}

    return app


class WebhookReceiver:
    """uvicorn serving `webhook_app` on a daemon thread; `start()` returns once it accepts connections."""

    def __init__(self, handler: Callable[[dict], None], token: str, host: str = "127.0.0.1", port: int = 0):
        self.handler, self.token, self.host = handler, token, host
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.port = port
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    def __repr__(self) -> str:
        return f"WebhookReceiver(url={self.url!r})"

    def start(self, timeout: float = 20.0) -> WebhookReceiver:
        import uvicorn

        config = uvicorn.Config(webhook_app(self.handler, self.token), host=self.host, port=self.port,
                                log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="ls-webhook", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"webhook receiver on {self.host}:{self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
