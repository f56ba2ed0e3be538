"""`LabelStudioBackend`: the engine's human tasks go to Label Studio projects; answers come back.

Per campaign there are up to three projects, created on first use or reused when a project of the
same title exists: `<campaign> · MV`, `<campaign> · EV`, `<campaign> · correction` (labelling
configs in `ls_configs`). `submit` renders each task (`ls_tasks.task_payload`) and imports them in
batches of `batch_size`, one HTTP call per batch; a task keeps its engine id in `data`. `collect`
fetches the annotated pending tasks (one listing per project and page, only the pending ids) and
turns every task whose `raters` annotations are in into `HumanResult`s, each task once. With a
webhook (`start_webhook`, or `webhook_url` served by `ls_webhook.webhook_app`) annotation events
arrive as they happen and a full poll runs at most every `resync_every_s`.

A server that goes away is waited for (`ls_client.LabelStudioClient.call`: bounded backoff, then
`LabelStudioUnavailable` naming the URL). An import whose answer was lost is not repeated blindly:
before retrying, the tasks that did arrive are looked up (by id above the last known one) and only
the rest is sent again, so nothing is lost or doubled. Tasks already in a reused project are
adopted as pending (results an earlier process collected are returned again after a restart).
Annotations that cannot be read (e.g. no choice made) keep their task pending and are listed in
`problems`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.humans import ls_configs
from engine.humans.base import HumanResult, HumanTask
from engine.humans.ls_client import LabelStudioClient, LabelStudioSettings
from engine.humans.ls_tasks import ENGINE_ID, AnnotationError, result_from_annotation, task_payload
from engine.humans.ls_webhook import WebhookReceiver

log = logging.getLogger(__name__)
KIND_ORDER = ("mv", "ev", "correction")
IDS_PER_QUERY = 200
WEBHOOK_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}


@dataclass
class _Entry:
    kind: str
    project: int
    ls_id: int
    raters: int


def world_image(media_id: str):
    """The shapes-world image of a world media id (the default image source)."""
    from engine.world.samples import WorldOracle

    global _ORACLE
    if _ORACLE is None:
        _ORACLE = WorldOracle()
    return _ORACLE.scene(media_id).image


_ORACLE = None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


class LabelStudioBackend:
    """A `HumanBackend` over a Label Studio server (see module docstring)."""

    name = "label-studio"
    durable = True  # tasks live in Label Studio: a task claimed by a process that died is still answered

    def __init__(self, settings: LabelStudioSettings | None = None, images: Callable[[str], Any] | None = None,
                 *, client: LabelStudioClient | None = None, **settings_kwargs: Any):
        self.settings = settings or LabelStudioSettings(**settings_kwargs)
        self.client = client or LabelStudioClient(self.settings)
        self.images = images or world_image
        self._media_store = None
        self.webhook_token = secrets.token_urlsafe(24)
        self.problems: dict[str, str] = {}
        self.webhook_events = 0
        self._projects: dict[str, int] = {}
        self._entries: dict[str, _Entry] = {}
        self._by_ls: dict[int, str] = {}
        self._collected: set[str] = set()
        self._inbox: dict[str, dict[int, dict]] = {}
        self._lock = threading.Lock()
        self._receiver: WebhookReceiver | None = None
        self._last_poll = float("-inf")
        self._discovered = False
        self._overlap: dict[int, int] = {}

    def __repr__(self) -> str:
        return (f"LabelStudioBackend(url={self.settings.url!r}, campaign={self.settings.campaign!r}, "
                f"pending={len(self._entries) - len(self._collected)})")

    # --- projects --------------------------------------------------------------------------------
    def project_title(self, kind: str) -> str:
        return f"{self.settings.campaign} · {ls_configs.TITLES[kind]}"

    def discover(self) -> None:
        """Find the campaign's existing projects (once) and adopt their tasks as pending."""
        if self._discovered:
            return
        for kind in KIND_ORDER:
            if kind not in self._projects:
                pid = self.client.find_project(self.project_title(kind))
                if pid is not None:
                    self._use(kind, pid, adopt=True)
        self._discovered = True

    def project(self, kind: str) -> int:
        """The id of the campaign's project for a task kind (found by title, else created)."""
        if kind in self._projects:
            return self._projects[kind]
        title = self.project_title(kind)
        pid = self.client.find_project(title)
        if pid is not None:
            return self._use(kind, pid, adopt=True)
        pid = self.client.create_project(
            title, ls_configs.label_config(kind), maximum_annotations=1,
            description=f"sam3-engine {kind} tasks of campaign {self.settings.campaign!r}")
        log.info("created Label Studio project %r (id %d)", title, pid)
        return self._use(kind, pid, adopt=False)

    def _use(self, kind: str, pid: int, adopt: bool) -> int:
        if adopt:
            self._adopt(kind, pid)
        self._projects[kind] = pid
        if self.settings.webhook_url:
            self.client.ensure_webhook(pid, self.settings.webhook_url, self.webhook_token)
        return pid

    def _adopt(self, kind: str, pid: int) -> None:
        tasks = self.client.tasks(pid, what="reading existing tasks")
        for t in tasks:
            data = _get(t, "data") or {}
            tid = data.get(ENGINE_ID)
            if tid and tid not in self._entries:
                self._record(tid, _Entry(kind, pid, int(_get(t, "id")), int(data.get("raters") or 1)))
        log.info("reusing Label Studio project %r (id %d, %d tasks)", self.project_title(kind), pid, len(tasks))

    def _record(self, tid: str, entry: _Entry) -> None:
        self._entries[tid] = entry
        self._by_ls[entry.ls_id] = tid

    # --- HumanBackend ----------------------------------------------------------------------------
    def submit(self, tasks: Sequence[HumanTask]) -> list[str]:
        tasks = list(tasks)
        ids = [t.task_id for t in tasks]
        self.discover()  # adopt what reused projects hold before checking for duplicates
        dupes = {i for i, n in Counter(ids).items() if n > 1} | (set(ids) & set(self._entries))
        if dupes:
            raise ValueError(f"task id(s) submitted twice: {sorted(dupes)[:5]}")
        done = 0
        for kind in KIND_ORDER:
            group = [t for t in tasks if t.kind == kind]
            if not group:
                continue
            pid = self.project(kind)
            self._ensure_overlap(pid, max(t.raters for t in group))
            for start in range(0, len(group), self.settings.batch_size):
                chunk = group[start:start + self.settings.batch_size]
                payloads = []
                for t in chunk:
                    try:
                        payloads.append(self._payload(t))
                    except ValueError as err:
                        raise ValueError(f"task {t.task_id!r} (media {t.media_id!r}) cannot be sent to Label "
                                         f"Studio: {err}; {done} earlier task(s) of this call were submitted") from err
                self._import(pid, chunk, payloads)
                done += len(chunk)
        return ids

    def collect(self, task_ids: Sequence[str] | None = None) -> list[HumanResult]:
        self.discover()
        pending = [t for t in self._entries if t not in self._collected]
        open_ids = set(pending)
        wanted = pending if task_ids is None else [t for t in dict.fromkeys(task_ids) if t in open_ids]
        if not wanted:
            return []
        annotations = self._gather(wanted)
        results: list[HumanResult] = []
        for tid in wanted:
            entry = self._entries[tid]
            anns = self._first_per_rater(annotations.get(tid, []))
            if len(anns) < entry.raters:
                continue
            try:
                got = [result_from_annotation(entry.kind, tid, a) for a in anns[:entry.raters]]
            except AnnotationError as err:
                if self.problems.get(tid) != str(err):
                    log.warning("Label Studio answer kept pending: %s", err)
                self.problems[tid] = str(err)
                continue
            self.problems.pop(tid, None)
            self._collected.add(tid)
            with self._lock:
                self._inbox.pop(tid, None)
            results.extend(got)
        return results

    def pending(self) -> list[str]:
        self.discover()
        return [t for t in self._entries if t not in self._collected]

    # --- webhook ---------------------------------------------------------------------------------
    def handle_webhook(self, payload: dict) -> None:
        """Take one Label Studio webhook event (annotation created / updated) into the inbox."""
        if payload.get("action") not in WEBHOOK_ACTIONS:
            return
        anns = payload.get("annotations") or ([payload["annotation"]] if payload.get("annotation") else [])
        task = payload.get("task") or {}
        for ann in anns:
            if not isinstance(ann, dict) or "id" not in ann:
                continue
            ls_task = ann.get("task") if isinstance(ann.get("task"), int) else task.get("id")
            tid = self._by_ls.get(int(ls_task)) if ls_task is not None else None
            tid = tid or (task.get("data") or {}).get(ENGINE_ID)
            if tid is None:
                continue
            with self._lock:
                self._inbox.setdefault(tid, {})[int(ann["id"])] = ann
                self.webhook_events += 1

    def start_webhook(self, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> str:
        """Serve the webhook receiver and register it on the campaign's projects; returns its URL."""
        if self._receiver is None:
            self._receiver = WebhookReceiver(self.handle_webhook, self.webhook_token, host, port).start()
        self.settings.webhook_url = public_url or self._receiver.url
        for pid in self._projects.values():
            self.client.ensure_webhook(pid, self.settings.webhook_url, self.webhook_token)
        return self.settings.webhook_url

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None

    # --- internals -------------------------------------------------------------------------------
    def _payload(self, task: HumanTask) -> dict:
        from model.preprocess import load_image

        if task.media_uri and self.images is world_image:  # the task says where its image is
            if self._media_store is None:
                from storage.objectstore import ObjectStore

                self._media_store = ObjectStore()  # one store (and S3 client) for every task
            source = self._media_store.read_bytes(task.media_uri)
        else:
            source = self.images(task.media_id)
        return task_payload(task, load_image(source, task.media_id))

    def _ensure_overlap(self, pid: int, raters: int) -> None:
        if self._overlap.get(pid, 1) < raters:
            self.client.set_overlap(pid, raters)
            self._overlap[pid] = raters

    def _import(self, pid: int, chunk: list[HumanTask], payloads: list[dict]) -> None:
        """Import one batch (one call); after a lost answer, send again only what did not arrive."""
        after = max((e.ls_id for e in self._entries.values() if e.project == pid), default=0)
        remaining = list(zip(chunk, payloads))
        attempted = False

        def attempt() -> None:
            nonlocal remaining, attempted
            if attempted:  # an earlier try may have landed: look before sending again
                arrived = self._arrived(pid, after)
                for t, _ in remaining:
                    if t.task_id in arrived:
                        self._record(t.task_id, _Entry(t.kind, pid, arrived[t.task_id], t.raters))
                remaining = [(t, p) for t, p in remaining if t.task_id not in arrived]
                if not remaining:
                    return
            attempted = True
            ls_ids = self.client.import_tasks(pid, [p for _, p in remaining])
            if ls_ids is None:  # no ids in the answer (asynchronous import): find them by engine id
                found = self._arrived(pid, after)
                ls_ids = [found[t.task_id] for t, _ in remaining]
            for (t, _), ls_id in zip(remaining, ls_ids):
                self._record(t.task_id, _Entry(t.kind, pid, ls_id, t.raters))
            remaining = []

        self.client.call(f"importing {len(payloads)} tasks into project {pid}", attempt)

    def _arrived(self, pid: int, after: int) -> dict[str, int]:
        tasks = self.client.tasks(pid, after_id=after, what="checking which tasks arrived")
        return {(_get(t, "data") or {}).get(ENGINE_ID): int(_get(t, "id")) for t in tasks}

    def _gather(self, wanted: list[str]) -> dict[str, list[dict]]:
        """Annotations of the wanted tasks: polled (when due) and from the webhook inbox."""
        out: dict[str, list[dict]] = {}
        due = not self.settings.webhook_url or time.monotonic() - self._last_poll >= self.settings.resync_every_s
        if due:
            by_project: dict[int, list[int]] = {}
            for tid in wanted:
                e = self._entries[tid]
                by_project.setdefault(e.project, []).append(e.ls_id)
            for pid, ls_ids in by_project.items():
                for i in range(0, len(ls_ids), IDS_PER_QUERY):
                    for t in self.client.tasks(pid, ids=ls_ids[i:i + IDS_PER_QUERY], annotated=True, fields="all",
                                               what="collecting annotations"):
                        tid = self._by_ls.get(int(_get(t, "id")))
                        if tid is not None:
                            out[tid] = [a if isinstance(a, dict) else a.dict() for a in (_get(t, "annotations") or [])]
            self._last_poll = time.monotonic()
        with self._lock:
            for tid in wanted:
                have = {a.get("id") for a in out.get(tid, [])}
                extra = [a for i, a in self._inbox.get(tid, {}).items() if i not in have]
                if extra:
                    out.setdefault(tid, []).extend(extra)
        return out

    @staticmethod
    def _first_per_rater(annotations: list[dict]) -> list[dict]:
        """Submitted (not skipped) annotations, the first of each annotator, oldest first."""
        seen, out = set(), []
        for a in sorted(annotations, key=lambda a: int(a.get("id") or 0)):
            if a.get("was_cancelled"):
                continue
            who = a.get("completed_by")
            who = who.get("id") if isinstance(who, dict) else who
            if who in seen:
                continue
            seen.add(who)
            out.append(a)
        return out
