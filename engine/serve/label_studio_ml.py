"""The SAM 3 ML backend for Label Studio: a FastAPI app speaking Label Studio's ML-backend protocol.

Endpoints (what Label Studio calls; see its `ml/api_connector.py`):
- `GET /health` -> `{"status": "UP", "model_class": "SAM3", "model_version": ...}`;
- `POST /setup` `{project, schema, hostname, access_token, ...}` -> `{"model_version": ...}`; the
  labelling config is checked (an Image and a BrushLabels tag are needed) and remembered per project;
- `POST /predict` `{tasks, project, label_config, params: {context}}` -> `{"results": [...]}` with one
  prediction per task: every SAM 3 instance of every prompt (see `ls_prompts.task_prompts`) as a
  brush region (Label Studio brush RLE) carrying its score;
- `POST /webhook` -> acknowledges events (this backend does not train);
- `GET /versions` -> `{"versions": [model_version]}`.

`create_app(predictor, model_version)` builds it around a `model.predictor.Predictor`;
`sam3-engine serve label-studio-backend --model REF --port N` runs it. Images that live on the
Label Studio server are fetched with `$LABEL_STUDIO_URL` / `$LABEL_STUDIO_API_KEY` when set (else
the host and token /setup sent).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.humans.ls_masks import brush_result
from engine.serve.ls_prompts import (
    ConfigSpec,
    LabelConfigError,
    TaskInputError,
    load_task_image,
    parse_label_config,
    region_label,
    task_prompts,
)
from storage.records import Instance

log = logging.getLogger(__name__)


class SAM3Service:
    """Prompts -> SAM 3 -> brush predictions; one predictor call per request (lock-serialised)."""

    def __init__(self, predictor: Any, model_version: str, max_instances: int = 50):
        self.predictor = predictor
        self.model_version = model_version
        self.max_instances = max_instances
        self.projects: dict[str, dict] = {}
        self._lock = threading.Lock()

    def setup(self, body: dict) -> dict:
        spec = parse_label_config(body.get("schema") or "")
        self.projects[str(body.get("project"))] = {
            "spec": spec, "hostname": body.get("hostname"), "access_token": body.get("access_token")}
        return {"model_version": self.model_version}

    def _server(self, project: str) -> tuple[str | None, str | None]:
        known = self.projects.get(project, {})
        url = os.environ.get("LABEL_STUDIO_URL") or known.get("hostname")
        key = os.environ.get("LABEL_STUDIO_API_KEY") or known.get("access_token")
        return url, key

    def predict(self, body: dict) -> dict:
        from model.predictor import PredictItem, Prompt

        tasks = body.get("tasks") or []
        project = str(body.get("project"))
        spec: ConfigSpec = (parse_label_config(body["label_config"]) if body.get("label_config")
                            else self.projects.get(project, {}).get("spec"))
        if spec is None:
            raise LabelConfigError(f"project {project}: no label_config in the request and no /setup before")
        context = (body.get("params") or {}).get("context")
        url, key = self._server(project)
        items, slots, results = [], [], []
        for task in tasks:
            try:
                rgb = load_task_image(task, spec, url, key)
                p = task_prompts(task, spec, context, rgb.shape[1], rgb.shape[0])
            except TaskInputError as err:
                log.warning("no prediction: %s", err)
                results.append({"result": [], "score": 0.0, "model_version": self.model_version})
                continue
            prompts = [Prompt(ph, p.boxes, p.box_labels) for ph in p.phrases]
            items.append(PredictItem(task.get("id"), rgb, prompts))
            slots.append(len(results))
            results.append(None)
        if items:
            with self._lock:
                predicted = self.predictor.predict(items)
            for slot, image in zip(slots, predicted):
                results[slot] = self._prediction(image, spec)
        return {"results": results}

    def _prediction(self, image: Any, spec: ConfigSpec) -> dict:
        regions, scores = [], []
        if image.error:
            log.warning("no prediction for task %s: %s", image.image_id, image.error)
        found = sorted(((inst, pair.phrase) for pair in image.pairs for inst in pair.instances),
                       key=lambda ip: -ip[0].score)[: self.max_instances]
        for k, (inst, phrase) in enumerate(found):
            record = Instance(rle=inst.rle, bbox=inst.bbox, source="model", score=inst.score)
            regions.append(brush_result(record, spec.brush_name, spec.image_name, region_label(phrase, spec.labels),
                                        region_id=f"sam3-{k}", score=inst.score))
            scores.append(inst.score)
        return {"result": regions, "score": float(sum(scores) / len(scores)) if scores else 0.0,
                "model_version": self.model_version}


def create_app(predictor: Any, model_version: str, max_instances: int = 50):
    """The FastAPI app of the backend around a `Predictor`."""
    service = SAM3Service(predictor, model_version, max_instances)
    app = FastAPI(title="sam3-engine: SAM 3 ML backend for Label Studio")
    app.state.service = service

    async def _body(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LabelConfigError("request body must be a JSON object")
        return body

    @app.exception_handler(LabelConfigError)
    async def _bad_config(_request: Request, err: LabelConfigError):
        return JSONResponse(status_code=400, content={"status": "error", "error": str(err)})

    @app.get("/health")
    @app.get("/")
    def health() -> dict:
        return {"status": "UP", "model_class": "SAM3", "model_version": model_version}

    @app.post("/setup")
    async def setup(request: Request) -> dict:
        return service.setup(await _body(request))

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = await _body(request)
        return await run_in_threadpool(service.predict, body)

    @app.post("/webhook")
    async def webhook(request: Request) -> dict:
        body = await _body(request)
        return {"status": "ok", "action": body.get("action"), "note": "this backend does not train"}

    @app.get("/versions")
    def versions() -> dict:
        return {"versions": [model_version]}

    return app


def serve(loaded: Any, model_version: str, host: str = "127.0.0.1", port: int = 9090,
          score_threshold: float = 0.5, max_instances: int = 50, batch_size: int = 16) -> None:
    """Run the backend with uvicorn until interrupted."""
    import uvicorn

    from model.predictor import Predictor

    predictor = Predictor(loaded, batch_size=batch_size, score_threshold=score_threshold)
    app = create_app(predictor, model_version, max_instances)
    uvicorn.run(app, host=host, port=port, log_level="info")
