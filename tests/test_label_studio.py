"""LabelStudioBackend against a real Label Studio 1.23 server (session fixture `label_studio`).

Projects and tasks are created with the right configs and predictions, API-made annotations come back
as the right HumanResults (each once), masks survive COCO -> brush -> COCO pixel-exactly, imports are
batched, a lost import answer is not doubled, the webhook delivers events, credentials never show,
and a server stopped mid-campaign is waited for (last test: it restarts the session's server).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import httpx
import numpy as np
import pytest

from engine.humans import ls_configs as cfg
from engine.humans.base import HumanTask
from engine.humans.label_studio import LabelStudioBackend
from engine.humans.ls_client import LabelStudioError
from engine.humans.ls_masks import brush_to_mask, polygon_result
from engine.world.samples import generate_samples
from storage.masks import instance_to_mask


@pytest.fixture(scope="module")
def sample():
    return next(iter(generate_samples(1, seed=11, negatives_per_image=2)))


@pytest.fixture(scope="module")
def positives(sample):
    pos = [p for p in sample.pairs if p.label == "positive"]
    assert len(pos) >= 3
    return pos


def make_backend(server, campaign=None, **kw) -> LabelStudioBackend:
    kw.setdefault("retry_deadline_s", 30)
    return LabelStudioBackend(campaign=campaign or f"test-{uuid.uuid4().hex[:8]}", url=server.url,
                              api_key=server.pat, **kw)


def mv_task(tid, sample, pair, k=0, raters=1):
    return HumanTask(task_id=tid, kind="mv", media_id=sample.key, phrase=pair.phrase, masks=[pair.instances[k]],
                     raters=raters)


def choice(kind, label):
    return [{"from_name": cfg.DECISION, "to_name": cfg.IMAGE, "type": "choices",
             "value": {"choices": [cfg.choice_for_label(kind, label)]}}]


def annotate(backend, tid, result, lead_time=1.0, **kw):
    e = backend._entries[tid]
    return backend.client.sdk.annotations.create(id=e.ls_id, result=result, lead_time=lead_time, **kw)


def test_projects_tasks_and_predictions(label_studio, sample, positives):
    b = make_backend(label_studio, batch_size=2)
    calls = []
    real = b.client.sdk.projects.import_tasks

    def counting(project, request, **kw):
        calls.append((project, len(request)))
        return real(project, request=request, **kw)

    b.client.sdk.projects.import_tasks = counting
    mv = [mv_task(f"mv-{i}", sample, p) for i, p in enumerate(positives[:3])]
    pair = positives[0]
    ev = HumanTask(task_id="ev-0", kind="ev", media_id=sample.key, phrase=pair.phrase, masks=pair.instances)
    cor = HumanTask(task_id="cor-0", kind="correction", media_id=sample.key, phrase=pair.phrase, masks=pair.instances)
    assert b.submit(mv + [ev, cor]) == ["mv-0", "mv-1", "mv-2", "ev-0", "cor-0"]
    assert [n for _, n in calls] == [2, 1, 1, 1]  # one HTTP call per batch of 2, per project
    assert sorted(b.pending()) == sorted(["mv-0", "mv-1", "mv-2", "ev-0", "cor-0"])

    sdk = b.client.sdk
    for kind in ("mv", "ev", "correction"):
        project = sdk.projects.get(id=b.project(kind))
        assert project.title == f"{b.settings.campaign} · {cfg.TITLES[kind]}"
        assert project.label_config.strip() == cfg.label_config(kind).strip()
    tasks = {t.data["engine_task_id"]: t for t in sdk.tasks.list(project=b.project("mv"), fields="all")}
    assert set(tasks) == {"mv-0", "mv-1", "mv-2"} and tasks["mv-1"].data["phrase"] == positives[1].phrase
    assert tasks["mv-0"].data["image"].startswith("data:image/png;base64,")

    cor_task = sdk.tasks.get(id=str(b._entries["cor-0"].ls_id))
    (pred,) = cor_task.predictions
    regions = pred.result
    assert pred.model_version == "sam3-engine-proposals" and len(regions) == len(pair.instances)
    for region, inst in zip(regions, pair.instances):
        assert region["type"] == "brushlabels" and region["from_name"] == cfg.BRUSH
        got = brush_to_mask(region["value"]["rle"], region["original_width"], region["original_height"])
        np.testing.assert_array_equal(got, instance_to_mask(inst))  # COCO -> LS brush -> COCO, pixel-exact

    again = make_backend(label_studio, campaign=b.settings.campaign)  # a restarted engine: reuse, adopt
    assert again.project("mv") == b.project("mv") and sorted(again.pending()) == sorted(b.pending())
    with pytest.raises(ValueError, match="submitted twice: \\['mv-1'\\]"):
        again.submit([mv_task("mv-1", sample, positives[1])])
    with pytest.raises(ValueError, match="submitted twice"):
        b.submit([mv_task("new-1", sample, positives[1]), mv_task("new-1", sample, positives[1])])


def test_annotations_come_back_as_results(label_studio, sample, positives):
    b = make_backend(label_studio)
    pair = positives[0]
    tasks = [mv_task("mv-a", sample, pair), mv_task("mv-b", sample, positives[1], raters=2),
             HumanTask(task_id="ev-a", kind="ev", media_id=sample.key, phrase=pair.phrase, masks=pair.instances),
             HumanTask(task_id="cor-a", kind="correction", media_id=sample.key, phrase=pair.phrase,
                       masks=pair.instances),
             HumanTask(task_id="cor-bad", kind="correction", media_id=sample.key, phrase=pair.phrase, masks=[])]
    b.submit(tasks)
    assert b.collect() == []
    annotate(b, "mv-a", choice("mv", "accept_as_text"), lead_time=3.25)
    annotate(b, "mv-b", choice("mv", "reject"), lead_time=2.0)
    annotate(b, "ev-a", choice("ev", "reject_unseparated"), lead_time=7.5)
    # the annotator keeps the preloaded proposals and adds a polygon
    pred = b.client.sdk.tasks.get(id=str(b._entries["cor-a"].ls_id)).predictions[0].result
    h, w = pair.instances[0].rle["size"]
    poly = polygon_result([(1, 1), (30, 1), (30, 20), (1, 20)], w, h, cfg.POLYGON, cfg.IMAGE, cfg.OBJECT)
    annotate(b, "cor-a", list(pred) + [poly], lead_time=41.0)
    annotate(b, "cor-bad", [{"from_name": cfg.OUTCOME, "to_name": cfg.IMAGE, "type": "choices",
                             "value": {"choices": ["positive"]}}])  # positive, but no mask drawn

    got = {(r.task_id, r.label): r for r in b.collect()}
    assert set(got) == {("mv-a", "accept_as_text"), ("ev-a", "reject_unseparated"), ("cor-a", "positive")}
    assert got[("mv-a", "accept_as_text")].seconds == 3.25 and got[("ev-a", "reject_unseparated")].seconds == 7.5
    cor = got[("cor-a", "positive")]
    assert cor.seconds == 41.0 and len(cor.instances) == len(pair.instances) + 1
    for inst, want in zip(cor.instances, pair.instances):
        np.testing.assert_array_equal(instance_to_mask(inst), instance_to_mask(want))
    assert instance_to_mask(cor.instances[-1])[10, 15]
    assert "cor-bad" in b.problems and "no masks" in b.problems["cor-bad"]
    assert b.collect() == []  # each result once
    assert sorted(b.pending()) == ["cor-bad", "mv-b"]

    # the second rater of mv-b (another Label Studio user) completes it: both results together
    user = b.client.sdk.users.create(username=f"r-{uuid.uuid4().hex[:6]}", email=f"{uuid.uuid4().hex[:6]}@x.org",
                                     password=uuid.uuid4().hex)
    annotate(b, "mv-b", choice("mv", "accept"), lead_time=5.0, completed_by=user.id)
    assert b.collect(task_ids=["mv-a", "cor-bad"]) == []
    both = b.collect(task_ids=["mv-b"])
    assert sorted(r.label for r in both) == ["accept", "reject"] and len({r.rater for r in both}) == 2
    assert b.pending() == ["cor-bad"]


def test_lost_import_answer_is_not_doubled(label_studio, sample, positives):
    b = make_backend(label_studio, retry_initial_s=0.1)
    b.project("mv")
    real = b.client.sdk.projects.import_tasks
    state = {"n": 0}

    def flaky(project, request, **kw):
        state["n"] += 1
        out = real(project, request=request, **kw)
        if state["n"] == 1:
            raise httpx.ReadError("connection reset after the import landed")
        return out

    b.client.sdk.projects.import_tasks = flaky
    b.submit([mv_task(f"l-{i}", sample, p) for i, p in enumerate(positives[:3])])
    assert state["n"] == 1 and b.client.retries == 1
    tasks = b.client.sdk.tasks.list(project=b.project("mv"))
    ids = sorted(t.data["engine_task_id"] for t in tasks)
    assert ids == ["l-0", "l-1", "l-2"]  # each exactly once
    assert {b._entries[i].ls_id for i in ids} == {t.id for t in tasks}


def test_webhook_delivers_annotations(label_studio, sample, positives):
    b = make_backend(label_studio, resync_every_s=3600)
    try:
        url = b.start_webhook()
        b.submit([mv_task("wh-1", sample, positives[0])])
        hooks = b.client.sdk.webhooks.list(project=str(b.project("mv")))
        assert [h.url for h in hooks] == [url]
        assert b.collect() == []  # the first collect polls; later ones wait for events
        annotate(b, "wh-1", choice("mv", "flag_label"), lead_time=6.0)
        deadline = time.monotonic() + 30
        while b.webhook_events == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b.webhook_events >= 1
        (r,) = b.collect()
        assert (r.task_id, r.label, r.seconds) == ("wh-1", "flag_label", 6.0)
        bad = httpx.post(url, json={"action": "ANNOTATION_CREATED"}, headers={"X-Sam3-Webhook-Token": "wrong"})
        assert bad.status_code == 403
    finally:
        b.close()


def test_credentials_never_shown(label_studio, sample, positives, caplog):
    caplog.set_level(logging.DEBUG)
    b = make_backend(label_studio)
    b.submit([mv_task("cred-1", sample, positives[0])])
    annotate(b, "cred-1", choice("mv", "accept"))
    assert len(b.collect()) == 1
    secret = label_studio.pat
    access = b.client._access_token()
    assert access and secret not in repr(b) and secret not in repr(b.settings) and secret not in repr(b.client)
    assert secret not in caplog.text and access not in caplog.text
    wrong = LabelStudioBackend(campaign="x", url=label_studio.url, api_key="not-a-valid-key-0123456789",
                               retry_deadline_s=1)
    with pytest.raises(LabelStudioError) as err:
        wrong.project("mv")
    assert "not-a-valid-key" not in str(err.value) and label_studio.url in str(err.value)
    assert "401" in str(err.value)


def test_unreadable_image_is_a_named_error(label_studio, sample, positives):
    b = make_backend(label_studio, images=lambda media_id: b"not an image")
    with pytest.raises(ValueError, match=f"task 'bad-1' \\(media '{sample.key}'\\) cannot be sent to Label Studio"):
        b.submit([mv_task("bad-1", sample, positives[0])])
    assert b.pending() == []


def test_server_stopped_mid_campaign_is_waited_for(label_studio, sample, positives, caplog):
    """Runs last in this module: stops the session's server, restarts it on the same port and data."""
    caplog.set_level(logging.WARNING)
    b = make_backend(label_studio, retry_deadline_s=400, retry_max_s=3)
    b.submit([mv_task("o-1", sample, positives[0])])
    label_studio.stop()
    restarted = threading.Thread(target=lambda: (time.sleep(2), label_studio.start()), daemon=True)
    restarted.start()
    b.submit([mv_task("o-2", sample, positives[1]), mv_task("o-3", sample, positives[2])])  # waits, then lands
    restarted.join(timeout=300)
    assert b.client.retries > 0 and label_studio.url in caplog.text
    tasks = b.client.sdk.tasks.list(project=b.project("mv"))
    assert sorted(t.data["engine_task_id"] for t in tasks) == ["o-1", "o-2", "o-3"]
    for tid in ("o-1", "o-2", "o-3"):
        annotate(b, tid, choice("mv", "accept"))
    assert sorted(r.task_id for r in b.collect()) == ["o-1", "o-2", "o-3"]

    gone = LabelStudioBackend(campaign="x", url="http://127.0.0.1:9", api_key=label_studio.pat,  # nothing there
                              retry_deadline_s=2, retry_initial_s=0.5)
    with pytest.raises(LabelStudioError, match="Label Studio at http://127.0.0.1:9 did not answer for 2 s"):
        gone.project("mv")
