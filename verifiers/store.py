"""Saving, versioning and loading learned verifiers ("saved and versioned like models").

A `VerifierSet` is the MV and/or EV `TaskModel`s trained together, their `PhraseFeatures` and
metadata. Its folder:

    config.json      format, tasks, feature names, classes, temperatures, metrics, training info
    phrases.npz      the phrase-embedding PCA
    mv.pkl, ev.pkl   the pickled scikit-learn classifiers (load only folders you trust)
    thresholds.json  optional: routing thresholds from `verifiers.calibration`

Versions are published with the model registry (`model.registry.ModelRegistry`, same layout and
index: `<root>/models/<name>/<stamp>/` + `manifest.json`, `name:vNNNN` references), and the version
id stamped on verdicts is that reference (`name:v0001/mv`). A folder loaded directly gets
`dir:<folder name>@<content hash>`, so two different folders never share an id.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verifiers.embedding import PhraseFeatures
from verifiers.labels import TASKS
from verifiers.learned import FeatureBuilder, LearnedVerifier, TaskModel

FORMAT, FORMAT_VERSION = "sam3-engine-verifiers", 1


class VerifierLoadError(RuntimeError):
    """A verifier folder or reference that cannot be loaded; the message says which and why."""


@dataclass
class VerifierSet:
    models: dict[str, TaskModel]
    phrases: PhraseFeatures
    info: dict = field(default_factory=dict)
    thresholds: dict | None = None
    version: str = "unsaved"

    @property
    def tasks(self) -> list[str]:
        return [t for t in TASKS if t in self.models]

    def verifier(self, task: str, contexts=None, media=None) -> LearnedVerifier:
        """The `Verifier` of one task; `contexts` (a ContextProvider) and `media` resolve what requests lack."""
        if task not in self.models:
            raise VerifierLoadError(
                f"verifier set {self.version} has no {task!r} model (has {self.tasks})"
            )
        builder = FeatureBuilder(self.phrases, contexts, media)
        return LearnedVerifier(self.models[task], builder, f"{self.version}/{task}")

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tasks": self.tasks,
            "embedder": self.phrases.embedder_name,
            "dims": self.phrases.dims,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "info": self.info,
            "models": {
                t: {
                    "features": m.feature_names,
                    "classes": m.classes,
                    "temperature": m.temperature,
                    "metrics": m.metrics,
                }
                for t, m in self.models.items()
            },
        }
        (folder / "config.json").write_text(
            json.dumps(config, indent=2, sort_keys=True, default=str)
        )
        st = self.phrases.state()
        np.savez(folder / "phrases.npz", mean=st["mean"], components=st["components"])
        for t, m in self.models.items():
            (folder / f"{t}.pkl").write_bytes(pickle.dumps(m.clf, protocol=pickle.HIGHEST_PROTOCOL))
        if self.thresholds is not None:
            (folder / "thresholds.json").write_text(
                json.dumps(self.thresholds, indent=2, sort_keys=True)
            )
        return folder

    @classmethod
    def load(cls, folder: str | Path, version: str | None = None) -> VerifierSet:
        folder = Path(folder)
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise VerifierLoadError(f"{folder} is not a verifier folder (no config.json)")
        config = json.loads(cfg_path.read_text())
        if config.get("format") != FORMAT:
            raise VerifierLoadError(
                f"{folder}: config.json format is {config.get('format')!r}, not {FORMAT!r}"
            )
        if config.get("format_version") != FORMAT_VERSION:
            raise VerifierLoadError(
                f"{folder}: format_version {config.get('format_version')} "
                f"(this code reads {FORMAT_VERSION})"
            )
        arrays = np.load(folder / "phrases.npz")
        phrases = PhraseFeatures.from_state(
            {
                "embedder": config["embedder"],
                "dims": config["dims"],
                "mean": arrays["mean"],
                "components": arrays["components"],
            }
        )
        models = {}
        for t in config["tasks"]:
            meta = config["models"][t]
            clf = pickle.loads((folder / f"{t}.pkl").read_bytes())
            models[t] = TaskModel(
                t, meta["features"], meta["classes"], clf, meta["temperature"], meta["metrics"]
            )
        thr = folder / "thresholds.json"
        return cls(
            models,
            phrases,
            config.get("info", {}),
            json.loads(thr.read_text()) if thr.is_file() else None,
            version or f"dir:{folder.name}@{content_hash(folder)}",
        )


def content_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


def registry(root: str, state: str | None = None):
    from model.registry import ModelRegistry

    return ModelRegistry(root, state)


def publish(
    vset: VerifierSet,
    name: str,
    reg: Any,
    *,
    metrics: dict | None = None,
    lineage: dict | None = None,
    parent: str | None = None,
) -> str:
    """Publish a verifier set as a new version of `name` in a `ModelRegistry`; returns `name:vNNNN`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sam3-verifiers-") as tmp:
        vset.save(tmp)
        rec = reg.publish(
            name,
            tmp,
            metrics=metrics or {t: m.metrics for t, m in vset.models.items()},
            lineage={"kind": "verifiers", **(lineage or {})},
            parent=parent,
        )
    vset.version = rec.ref
    return rec.ref


def load_verifiers(ref: str | Path, reg: Any = None) -> VerifierSet:
    """A verifier set from a folder, or from a registry reference (`name`, `name:v0002`, `name@promoted`)."""
    if os.path.isdir(ref):
        return VerifierSet.load(ref)
    if reg is None:
        raise VerifierLoadError(
            f"{str(ref)!r} is not a folder, and no registry was given to resolve it"
        )
    rec = reg.get(str(ref))
    return VerifierSet.load(reg.fetch(str(ref)), version=rec.ref)
