"""infra/: Kubernetes manifests validate offline (core kinds and the pod templates inside KubeRay
resources against the Kubernetes schemas shipped in kubernetes-validate; RayCluster / RayJob
against the JSON schemas authored from the KubeRay CRD in infra/kuberay/schemas/), the pieces
agree with each other (image, service address, secret names, DAG folder), the compose stack parses
with healthchecks and no absolute host paths, and the worker image copies every package."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

INFRA = Path(__file__).resolve().parent.parent / "infra"
K8S_VERSION = "1.30.0"
IMAGE = "ghcr.io/sam3-engine/worker:0.1.0"


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def load(name: str) -> dict:
    (doc,) = docs(INFRA / name)
    return doc


def schema(kind: str) -> dict:
    return json.loads((INFRA / "kuberay" / "schemas" / f"{kind}.schema.json").read_text())


def pod_templates(resource: dict) -> list[dict]:
    spec = resource["spec"]
    if resource["kind"] == "RayCluster":
        return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec.get("workerGroupSpecs", [])]
    return [spec["submitterPodTemplate"]] if "submitterPodTemplate" in spec else []


def validate_kuberay(resource: dict) -> None:
    """The CRD-level schema, then every pod template as a core v1 PodTemplate (strict)."""
    jsonschema.validate(resource, schema(resource["kind"].lower()))
    for template in pod_templates(resource):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                      "template": template}, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", sorted((INFRA / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_core_manifests_validate_against_the_kubernetes_schemas(path):
    for doc in docs(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "sam3") == "sam3"


def test_raycluster_has_a_cpu_head_and_a_gpu_worker_group():
    cluster = load("kuberay/raycluster.yaml")
    validate_kuberay(cluster)
    spec = cluster["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no work scheduled on the head
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265}
    (gpu,) = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    worker = gpu["template"]["spec"]["containers"][0]
    limits, requests = worker["resources"]["limits"], worker["resources"]["requests"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    assert requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == limits["nvidia.com/gpu"]  # k8s rule
    assert gpu["rayStartParams"]["num-gpus"] == limits["nvidia.com/gpu"]
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    assert any(t.get("key") == "nvidia.com/gpu" for t in gpu["template"]["spec"]["tolerations"])
    assert {c["image"] for t in pod_templates(cluster) for c in t["spec"]["containers"]} == {IMAGE}


def test_rayjob_targets_the_cluster_and_runs_the_engine():
    job, cluster = load("kuberay/rayjob.yaml"), load("kuberay/raycluster.yaml")
    validate_kuberay(job)
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert job["spec"]["shutdownAfterJobFinishes"] is False  # a selected cluster outlives the job
    assert job["spec"]["entrypoint"].startswith("sam3-engine campaign run s3://")
    yaml.safe_load(job["spec"]["runtimeEnvYAML"])


@pytest.mark.parametrize("kind,mutate,message", [
    ("raycluster", lambda d: d["spec"].update(workerGroupSpec=d["spec"].pop("workerGroupSpecs")),
     "workerGroupSpec"),
    ("raycluster", lambda d: d["spec"]["workerGroupSpecs"][0].update(replicas="1"), "'1' is not of type"),
    ("raycluster", lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
     "0 is not of type 'string'"),
    ("raycluster", lambda d: d["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(
        imagee="x"), "'imagee' was unexpected"),
    ("rayjob", lambda d: d["spec"].update(rayClusterSpec={"headGroupSpec": {}}), "is not valid under any of the given schemas"),
    ("rayjob", lambda d: d["spec"].pop("entrypoint"), "'entrypoint' is a required property"),
])
def test_the_validation_catches_broken_kuberay_manifests(kind, mutate, message):
    doc = copy.deepcopy(load(f"kuberay/{kind}.yaml"))
    mutate(doc)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError), match=re.escape(message)):
        validate_kuberay(doc)


def test_airflow_values_use_postgresql_our_image_and_the_ray_head():
    values = load("airflow/values.yaml")
    cluster = load("kuberay/raycluster.yaml")
    assert values["postgresql"]["enabled"] is False
    secret_name = values["data"]["metadataSecretName"]
    (secret,) = [d for d in docs(INFRA / "k8s" / "secrets.example.yaml") if d["metadata"]["name"] == secret_name]
    assert secret["stringData"]["connection"].startswith("postgresql://")
    assert values["executor"] in ("LocalExecutor", "CeleryExecutor", "KubernetesExecutor",
                                  "CeleryKubernetesExecutor")
    assert values["triggerer"]["enabled"] is True  # deferrable Ray-job and human waits need it
    assert f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}" == IMAGE
    assert values["airflowVersion"] == "3.3.2"
    env = {e["name"]: e["value"] for e in values["env"]}
    name, ns = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    assert env["AIRFLOW_CONN_RAY_DEFAULT"] == f"http://{name}-head-svc.{ns}.svc.cluster.local:8265"
    assert env["RAY_ADDRESS"] == f"{name}-head-svc.{ns}.svc.cluster.local:6379"
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert f"AIRFLOW__CORE__DAGS_FOLDER={values['config']['core']['dags_folder']}" in dockerfile
    extra = yaml.safe_load(values["extraEnvFrom"])
    assert extra == [{"secretRef": {"name": "sam3-storage"}}]


def test_worker_image_installs_the_pinned_stack_and_copies_every_package():
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    assert "pip install -c constraints.txt -r requirements.txt" in dockerfile
    pyproject = (INFRA.parent / "pyproject.toml").read_text()
    packages = re.findall(r'"(\w+)\*"', re.search(r"include = \[(.*?)\]", pyproject).group(1))
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert set(packages) <= copied, f"the image misses {set(packages) - copied}"
    assert "dags" in copied
    ignored = (INFRA.parent / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose" / "docker-compose.yaml").read_text())


def test_compose_stack_has_every_service_with_healthchecks():
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "seaweedfs", "ray-head", "ray-worker", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "label-studio"} <= set(services)
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"airflow-init", "storage-init"}
    for name, svc in services.items():
        if name not in one_shot:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            want = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert cond["condition"] == want, (name, dep)
    airflow_env = services["airflow-scheduler"]["environment"]
    assert airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert airflow_env["AIRFLOW_CONN_RAY_DEFAULT"] == "http://ray-head:8265"
    assert airflow_env["RAY_ADDRESS"] == "ray-head:6379"
    assert airflow_env["AWS_ENDPOINT_URL_S3"] == "http://seaweedfs:8333"
    assert services["ray-worker"]["command"][2] == "--address=ray-head:6379"
    gpu = yaml.safe_load((INFRA / "compose" / "docker-compose.gpu.yaml").read_text())
    assert gpu["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_compose_uses_no_absolute_host_paths_and_documents_its_secrets():
    compose = _compose()
    named = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            assert source in named or source.startswith(("./", "../")), f"{name}: host path {source!r}"
            if source.startswith("./"):
                assert (INFRA / "compose" / source).exists(), f"{name}: {source} is not in the repo"
        build = svc.get("build")
        if build:
            assert not build["context"].startswith("/") and (INFRA / "compose" / build["context"]).is_dir()
    text = (INFRA / "compose" / "docker-compose.yaml").read_text()
    # ${X} comes from .env ($${X} is a literal for the container's shell); two have defaults
    needed = set(re.findall(r"(?<!\$)\$\{(\w+)", text)) - {"SAM3_IMAGE", "LABEL_STUDIO_USERNAME"}
    example = dict(line.split("=", 1) for line in (INFRA / "compose" / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert needed <= set(example), f".env.example lacks {needed - set(example)}"
