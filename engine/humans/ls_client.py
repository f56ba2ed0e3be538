"""Talking to a Label Studio server: settings (config or environment), retries, and the few calls used.

`LabelStudioSettings` takes the URL and API key from config or from `LABEL_STUDIO_URL` /
`LABEL_STUDIO_API_KEY`; the key is a `SecretStr` and never appears in reprs, logs or errors (the
SDK exchanges a personal access token for short-lived access tokens itself; a legacy token works
too). `LabelStudioClient.call(what, fn)` runs one SDK call and, when the server is unreachable or
answers 5xx/429, waits with bounded exponential backoff and retries until `retry_deadline_s`, then
raises `LabelStudioUnavailable` naming the URL and what it was doing. Other API errors raise
`LabelStudioError` at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT_STATUS = {0, 408, 425, 429, 500, 502, 503, 504}


class LabelStudioError(RuntimeError):
    """A Label Studio request that failed for a reason retrying cannot fix."""


class LabelStudioUnavailable(LabelStudioError):
    """The server stayed unreachable past the retry deadline (nothing submitted was dropped)."""


class LabelStudioSettings(BaseModel):
    """Where the campaign's human work goes in Label Studio, and how patiently to talk to it."""

    campaign: str = Field(min_length=1, max_length=120, description="projects are named '<campaign> · <kind>'")
    url: str | None = Field(None, description="Label Studio URL (default $LABEL_STUDIO_URL)")
    api_key: SecretStr | None = Field(None, description="access token (default $LABEL_STUDIO_API_KEY)")
    batch_size: int = Field(200, ge=1, le=10_000, description="tasks per import call")
    page_size: int = Field(100, ge=1, le=1000)
    request_timeout_s: float = Field(30.0, gt=0)
    retry_deadline_s: float = Field(300.0, ge=0, description="how long to wait for a server that went away")
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(10.0, gt=0)
    webhook_url: str | None = Field(None, description="URL Label Studio posts annotation events to")
    resync_every_s: float = Field(300.0, ge=0, description="with a webhook: full poll at most this often")

    model_config = {"extra": "forbid"}

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"url {url!r} must start with http:// or https://")
        return url.rstrip("/") if url else url

    @model_validator(mode="after")
    def _from_env(self) -> LabelStudioSettings:
        if self.url is None:
            env = os.environ.get("LABEL_STUDIO_URL")
            if not env:
                raise ValueError("url is not set: pass url= or set LABEL_STUDIO_URL")
            self.url = self._url(env)
        if self.api_key is None:
            env = os.environ.get("LABEL_STUDIO_API_KEY")
            if not env:
                raise ValueError("api_key is not set: pass api_key= or set LABEL_STUDIO_API_KEY")
            self.api_key = SecretStr(env)
        return self


def _status(err: BaseException) -> int | None:
    return getattr(err, "status_code", None) if err.__class__.__name__ == "ApiError" else None


def describe(err: BaseException) -> str:
    """A short error text: for an API error its status and body (never its headers: they set cookies)."""
    if err.__class__.__name__ == "ApiError":
        return f"HTTP {getattr(err, 'status_code', None)}: {getattr(err, 'body', None)}"
    return f"{type(err).__name__}: {err}"


def is_transient(err: BaseException) -> bool:
    """True for errors a wait can fix: transport failures, timeouts, 5xx and 429 answers."""
    if isinstance(err, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    status = _status(err)
    return status is not None and (status in TRANSIENT_STATUS or status >= 500)


class LabelStudioClient:
    """The SDK client with retries; `call(what, fn)` is the only way requests are made."""

    def __init__(self, settings: LabelStudioSettings, sleep: Callable[[float], None] = time.sleep):
        from label_studio_sdk import LabelStudio

        self.settings = settings
        self.url = settings.url
        self._secret = settings.api_key.get_secret_value()  # type: ignore[union-attr]
        self.sdk = LabelStudio(base_url=self.url, api_key=self._secret, timeout=settings.request_timeout_s)
        self._sleep = sleep
        self.retries = 0  # how many waits so far (reports, tests)

    def __repr__(self) -> str:
        return f"LabelStudioClient(url={self.url!r})"

    def scrub(self, text: str) -> str:
        """Text with the API key (and any access token the SDK holds) removed."""
        for secret in (self._secret, self._access_token()):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _access_token(self) -> str | None:
        tokens = getattr(getattr(self.sdk, "_client_wrapper", None), "_tokens_client", None)
        return getattr(tokens, "_access_token", None)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        s = self.settings
        deadline = time.monotonic() + s.retry_deadline_s
        delay = s.retry_initial_s
        while True:
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - sorted into transient / permanent below
                detail = self.scrub(describe(err))[:500]
                if not is_transient(err):
                    raise LabelStudioError(f"Label Studio at {self.url}: {what} failed: {detail}") from None
                if time.monotonic() + delay > deadline:
                    raise LabelStudioUnavailable(
                        f"Label Studio at {self.url} did not answer for {s.retry_deadline_s:.0f} s while {what} "
                        f"(last error {detail}); submitted tasks are kept, try again later") from None
                self.retries += 1
                log.warning("Label Studio at %s unavailable while %s (%s); retrying in %.1f s",
                            self.url, what, type(err).__name__, delay)
                self._sleep(delay)
                delay = min(delay * 2, s.retry_max_s)

    # --- the calls the backend makes -----------------------------------------------------------
    def find_project(self, title: str) -> int | None:
        def find():
            for p in self.sdk.projects.list(title=title, page_size=self.settings.page_size):
                if p.title == title:
                    return int(p.id)
            return None
        return self.call(f"looking up project {title!r}", find)

    def create_project(self, title: str, label_config: str, description: str, maximum_annotations: int) -> int:
        p = self.call(f"creating project {title!r}", lambda: self.sdk.projects.create(
            title=title, label_config=label_config, description=description,
            maximum_annotations=maximum_annotations, show_collab_predictions=True))
        return int(p.id)

    def set_overlap(self, project: int, maximum_annotations: int) -> None:
        self.call(f"setting project {project} overlap to {maximum_annotations}", lambda: self.sdk.projects.update(
            project, maximum_annotations=maximum_annotations))

    def import_tasks(self, project: int, payloads: list[dict]) -> list[int] | None:
        """One import call (no retry here: the caller checks what arrived before retrying)."""
        r = self.sdk.projects.import_tasks(project, request=payloads, return_task_ids=True)
        ids = getattr(r, "task_ids", None)
        return [int(i) for i in ids] if ids is not None and len(ids) == len(payloads) else None

    def tasks(self, project: int, *, ids: Iterable[int] | None = None, annotated: bool = False,
              after_id: int | None = None, fields: str | None = None, what: str = "listing tasks") -> list[Any]:
        """Tasks of a project (only the given ids / annotated ones / with id > after_id), every page.

        Retried as a whole when the server goes away part-way.
        """
        query: dict = {}
        if ids is not None:
            query["selectedItems"] = {"all": False, "included": sorted(int(i) for i in ids)}
        items = []
        if annotated:
            items.append({"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number",
                          "value": 0})
        if after_id is not None:
            items.append({"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": int(after_id)})
        if items:
            query["filters"] = {"conjunction": "and", "items": items}
        kwargs: dict = {"project": project, "page_size": self.settings.page_size}
        if query:
            kwargs["query"] = json.dumps(query)
        if fields:
            kwargs["fields"] = fields
        return self.call(f"{what} of project {project}", lambda: list(self.sdk.tasks.list(**kwargs)))

    def ensure_webhook(self, project: int, url: str, token: str) -> None:
        def ensure():
            for hook in self.sdk.webhooks.list(project=str(project)):
                if getattr(hook, "url", None) == url:
                    return
            self.sdk.webhooks.create(url=url, project=project, send_payload=True, send_for_all_actions=False,
                                     actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"],
                                     headers={"X-Sam3-Webhook-Token": token}, is_active=True)
        self.call(f"registering the webhook of project {project}", ensure)
