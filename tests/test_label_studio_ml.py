"""The SAM 3 ML backend for Label Studio: protocol endpoints in-process, then the real thing —
`sam3-engine serve label-studio-backend` (a tiny model saved to a temp dir) registered as a project's
ML backend on the real Label Studio server, which asks it for predictions on a task."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine.humans.ls_masks import brush_to_mask
from engine.humans.ls_tasks import data_url
from engine.serve.ls_prompts import (
    ConfigSpec,
    LabelConfigError,
    TaskInputError,
    load_task_image,
    parse_label_config,
    task_prompts,
)
from engine.world.samples import encode_png
from storage.masks import decode_rle
from tests.label_studio_service import free_port

CONFIG = """<View>
  <Image name="img" value="$picture"/>
  <TextArea name="prompt" toName="img" rows="1" editable="true"/>
  <BrushLabels name="masks" toName="img"><Label value="shape"/><Label value="circle"/></BrushLabels>
  <RectangleLabels name="boxes" toName="img"><Label value="exemplar"/><Label value="negative"/></RectangleLabels>
</View>"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from model.presets import build_tiny, save_model

    return save_model(build_tiny(seed=3), tmp_path_factory.mktemp("models") / "tiny-sam3")


@pytest.fixture(scope="module")
def predictor(model_dir):
    from model.predictor import Predictor
    from model.presets import load_model

    return Predictor(load_model(model_dir), score_threshold=0.0)


@pytest.fixture(scope="module")
def image():
    from engine.humans.label_studio import world_image

    return world_image("shapes-base-224-7-000002")


def expected_masks(predictor, image, phrase, k):
    (res,) = predictor.predict([("x", image, [phrase])])
    return [decode_rle(i.rle) for i in res.pairs[0].instances[:k]]


def test_config_and_prompts():
    spec = parse_label_config(CONFIG)
    assert (spec.image_name, spec.image_key, spec.brush_name, spec.labels) == ("img", "picture", "masks",
                                                                              ["shape", "circle"])
    assert (spec.textarea_name, spec.rect_name) == ("prompt", "boxes")
    with pytest.raises(LabelConfigError, match="no <BrushLabels> tag on image 'img'"):
        parse_label_config('<View><Image name="img" value="$i"/></View>')
    context = {"result": [
        {"type": "textarea", "value": {"text": ["yellow bus"]}},
        {"type": "rectanglelabels", "value": {"x": 10, "y": 20, "width": 50, "height": 25,
                                               "rectanglelabels": ["negative"]}}]}
    p = task_prompts({"data": {}}, spec, context, 200, 100)
    assert p.phrases == ["yellow bus"] and p.boxes == [[20.0, 20.0, 100.0, 25.0]] and p.box_labels == [0]
    p = task_prompts({"data": {"prompt": "red star", "exemplars": [[1, 2, 3, 4]]}}, spec, None, 200, 100)
    assert p.phrases == ["red star"] and p.boxes == [[1.0, 2.0, 3.0, 4.0]] and p.box_labels == [1]
    assert task_prompts({"data": {}}, spec, None, 10, 10).phrases == ["shape", "circle"]  # labels as concepts
    with pytest.raises(TaskInputError, match="task 5: image '/etc/hosts' is on the Label Studio server"):
        load_task_image({"id": 5, "data": {"picture": "/etc/hosts"}}, spec)  # never a local file
    with pytest.raises(TaskInputError, match="is not a data URL or an http"):
        load_task_image({"id": 6, "data": {"picture": "file:///etc/hosts"}}, spec)
    assert isinstance(spec, ConfigSpec)


def test_protocol_endpoints_in_process(predictor, image):
    from fastapi.testclient import TestClient

    from engine.serve.label_studio_ml import create_app

    client = TestClient(create_app(predictor, "sam3:test", max_instances=2))
    assert client.get("/health").json() == {"status": "UP", "model_class": "SAM3", "model_version": "sam3:test"}
    bad = client.post("/setup", json={"project": "1.1", "schema": "<View><Image name='i' value='$i'/></View>"})
    assert bad.status_code == 400 and "BrushLabels" in bad.json()["error"]
    assert client.post("/setup", json={"project": "1.1", "schema": CONFIG}).json() == {"model_version": "sam3:test"}
    tasks = [{"id": 1, "data": {"picture": data_url(image), "prompt": "circle"}},
             {"id": 2, "data": {"prompt": "circle"}}]  # no image: an empty prediction, the other goes on
    out = client.post("/predict", json={"tasks": tasks, "project": "1.1", "label_config": CONFIG,
                                        "params": {"context": None}}).json()["results"]
    assert len(out) == 2 and out[1]["result"] == []
    regions = out[0]["result"]
    assert len(regions) == 2 and out[0]["model_version"] == "sam3:test"
    assert {r["value"]["brushlabels"][0] for r in regions} == {"circle"}  # the phrase is a label
    for region, want in zip(regions, expected_masks(predictor, image, "circle", 2)):
        assert (region["from_name"], region["to_name"], region["type"]) == ("masks", "img", "brushlabels")
        np.testing.assert_array_equal(brush_to_mask(region["value"]["rle"], 224, 224), want)
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).json()["status"] == "ok"


@pytest.fixture
def ml_server(model_dir, label_studio):
    port = free_port()
    # as docs/label_studio.md says: a personal access token lets it read images Label Studio serves
    env = dict(os.environ, HF_HUB_OFFLINE="1", LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=label_studio.pat)
    log = open(Path(model_dir).parent / f"ml-{port}.log", "wb")  # noqa: SIM115
    cmd = [str(Path(sys.executable).parent / "sam3-engine"), "serve", "label-studio-backend", "--model", str(model_dir),
           "--port", str(port), "--score-threshold", "0", "--max-instances", "3"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, Path(log.name).read_text()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "ML backend did not start"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_backend_connected_to_label_studio_predicts(label_studio, ml_server, predictor, image):
    from label_studio_sdk import LabelStudio

    sdk = LabelStudio(base_url=label_studio.url, api_key=label_studio.pat)
    project = sdk.projects.create(title=f"sam3-ml-{uuid.uuid4().hex[:6]}", label_config=CONFIG)
    (task_id,) = sdk.projects.import_tasks(project.id, request=[{"data": {"picture": data_url(image),
                                                                         "prompt": "shape"}}],
                                           return_task_ids=True).task_ids
    # a second task whose image is a file uploaded to Label Studio (served at /data/upload/..., login needed)
    up = httpx.post(f"{label_studio.url}/api/projects/{project.id}/import", params={"return_task_ids": "true"},
                    files={"file": ("scene.png", encode_png(image), "image/png")},
                    headers={"Authorization": f"Token {label_studio.legacy_token}"}, timeout=60)
    up.raise_for_status()
    (uploaded_id,) = up.json()["task_ids"]
    assert sdk.tasks.get(id=str(uploaded_id)).data["picture"].startswith("/data/upload/")
    ml = sdk.ml.create(project=project.id, url=ml_server, title="SAM 3", is_interactive=True)  # Label Studio calls /health, /setup
    assert ml.state == "CO"  # connected
    sdk.actions.create(id="retrieve_tasks_predictions", project=project.id,
                       selected_items={"all": False, "included": [task_id, uploaded_id]})
    (pred,) = sdk.predictions.list(task=task_id)
    assert pred.model_version == "sam3:tiny-sam3" and len(pred.result) == 3
    for region, want in zip(pred.result, expected_masks(predictor, image, "shape", 3)):
        assert region["value"]["brushlabels"] == ["shape"]
        got = brush_to_mask(region["value"]["rle"], region["original_width"], region["original_height"])
        np.testing.assert_array_equal(got, want)
    # interactive: an annotator types a prompt in the TextArea; Label Studio passes it as context
    r = httpx.post(f"{label_studio.url}/api/ml/{ml.id}/interactive-annotating",
                   json={"task": task_id, "context": {"result": [
                       {"type": "textarea", "from_name": "prompt", "to_name": "img", "value": {"text": ["circle"]}}]}},
                   headers={"Authorization": f"Token {label_studio.legacy_token}"}, timeout=120)
    r.raise_for_status()
    typed = r.json()["data"]["result"]
    assert [reg["value"]["brushlabels"] for reg in typed] == [["circle"]] * 3
    for region, want in zip(typed, expected_masks(predictor, image, "circle", 3)):
        np.testing.assert_array_equal(brush_to_mask(region["value"]["rle"], 224, 224), want)
    (from_upload,) = sdk.predictions.list(task=uploaded_id)  # no prompt in data: the labels are the prompts
    wanted = sorted([(i.score, decode_rle(i.rle)) for phrase in ("shape", "circle")
                     for i in predictor.predict([("u", image, [phrase])])[0].pairs[0].instances],
                    key=lambda si: -si[0])[:3]
    assert len(from_upload.result) == 3
    for region, (_, want) in zip(from_upload.result, wanted):
        np.testing.assert_array_equal(brush_to_mask(region["value"]["rle"], 224, 224), want)
