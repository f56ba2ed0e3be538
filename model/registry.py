"""The model registry: versioned SAM 3 models under a storage root, indexed in the state store.

A version is a folder `<root>/models/<name>/<stamp>-<hex>/` (local path or s3:// prefix) holding a
`save_pretrained` model with its tokenizer and processor settings, `metrics.json`, `lineage.json`
(parent version, shards trained on, training config, ...) and, written last, `manifest.json`
(every file with its size and sha256). The state store (`storage.state.StateStore`, SQLite or
PostgreSQL) indexes it as `name:vNNNN` with its URI, metrics, parent and promotion flag.

Publishing is atomic: files go to a fresh, uniquely named prefix that nothing references (locally a
hidden temp folder renamed into place), and the version becomes visible only when its index row is
committed; a crash before that leaves an unreferenced folder, never a half-published version.
Version numbers are allocated at indexing time (a concurrent publisher that loses the race takes
the next number; its files never collide because the folder names are unique).

References: `name` (the promoted version, else the latest), `name:latest`, `name:v0003` or `name:3`,
`name@promoted`. A local save_pretrained directory is accepted wherever a reference is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storage.objectstore import ObjectStore
from storage.state import StateError, StateStore
from storage.uri import join, parse

MODELS_PREFIX = "models"
MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


class RegistryError(LookupError):
    """A registry request that cannot be met; the message names the reference and why."""


@dataclass
class ModelRecord:
    """One registered version (what `list` / `get` / `promote` return)."""

    name: str
    version: str
    uri: str
    metrics: dict = field(default_factory=dict)
    parent: str | None = None
    promoted: bool = False
    created_at: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        return {**asdict(self), "ref": self.ref}


def _record(row) -> ModelRecord:
    return ModelRecord(row.name, row.version, row.uri, dict(row.metrics or {}), row.parent, bool(row.promoted),
                       row.created_at.isoformat() if row.created_at else None)


def _version_number(version: str) -> int:
    m = re.fullmatch(r"v?(\d+)", version)
    return int(m.group(1)) if m else -1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelRegistry:
    """list / get / publish / promote / fetch / load model versions (see module docstring)."""

    def __init__(self, root: str | ObjectStore, state: StateStore | str | None = None,
                 cache_dir: str | Path | None = None):
        self.store = root if isinstance(root, ObjectStore) else ObjectStore(root=str(root))
        if self.store.root is None:
            raise RegistryError("the registry needs a storage root (a folder or s3:// prefix)")
        if state is None:
            if self.store.root.scheme != "file":
                raise RegistryError(
                    f"registry at {self.store.root.uri}: an S3 root needs a state store "
                    "(pass state=StateStore(url) or a SQLAlchemy URL)"
                )
            state = f"sqlite:///{os.path.join(self.store.root.path, 'registry.db')}"
        self.state = state if isinstance(state, StateStore) else StateStore(state)
        self.cache_dir = Path(cache_dir or os.environ.get("SAM3_ENGINE_CACHE", Path.home() / ".cache" / "sam3-engine"))

    # ---- queries ----------------------------------------------------------------------------
    def list(self, name: str | None = None) -> list[ModelRecord]:
        """Every registered version (of `name`), oldest first."""
        return [_record(r) for r in self.state.list_models(name)]

    def get(self, ref: str) -> ModelRecord:
        """Resolve a reference (`name`, `name:latest`, `name:v0003`, `name:3`, `name@promoted`)."""
        name, sel = self._split(ref)
        versions = self.list(name)
        if not versions:
            known = sorted({r.name for r in self.list()})
            raise RegistryError(f"model {name!r} is not registered (known: {known or 'none'})")
        if sel is None:
            promoted = [v for v in versions if v.promoted]
            return promoted[0] if promoted else versions[-1]
        if sel == "@promoted":
            promoted = [v for v in versions if v.promoted]
            if not promoted:
                raise RegistryError(f"model {name!r} has no promoted version")
            return promoted[0]
        if sel == "latest":
            return versions[-1]
        want = _version_number(sel)
        for v in versions:
            if v.version == sel or (want >= 0 and _version_number(v.version) == want):
                return v
        raise RegistryError(f"model {ref!r}: no version {sel!r} (have {[v.version for v in versions]})")

    def lineage(self, ref: str) -> dict:
        return json.loads(self.store.read_bytes(join(self.get(ref).uri, "lineage.json")))

    def metrics(self, ref: str) -> dict:
        return json.loads(self.store.read_bytes(join(self.get(ref).uri, "metrics.json")))

    @staticmethod
    def _split(ref: str) -> tuple[str, str | None]:
        if "@" in ref:
            name, stage = ref.split("@", 1)
            if stage != "promoted":
                raise RegistryError(f"model reference {ref!r}: only '@promoted' is supported")
            return name, "@promoted"
        name, _, sel = ref.partition(":")
        return name, (sel or None)

    # ---- publishing -------------------------------------------------------------------------
    def publish(self, name: str, model_dir: str | Path, *, metrics: dict | None = None,
                lineage: dict | None = None, parent: str | None = None, shards: list[str] | str | None = None,
                config: dict | None = None) -> ModelRecord:
        """Upload a save_pretrained folder as a new version of `name`; index it; return it."""
        if not _NAME_RE.match(name):
            raise RegistryError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (max 100)")
        src = Path(model_dir)
        if not (src / "config.json").is_file():
            raise RegistryError(f"{src} is not a save_pretrained folder (no config.json)")
        parent_ref = self.get(parent).ref if parent else None
        lineage = {
            **(lineage or {}), "parent": parent_ref,
            "shards": shards if shards is None or isinstance(shards, list) else [shards],
            "config": config, "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        folder = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        final = join(self.store.root.uri, MODELS_PREFIX, name, folder)
        with tempfile.TemporaryDirectory(prefix="sam3-publish-") as tmp:
            extra = Path(tmp)
            (extra / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, sort_keys=True, default=str))
            (extra / "lineage.json").write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str))
            files = {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file()}
            files.update({"metrics.json": extra / "metrics.json", "lineage.json": extra / "lineage.json"})
            files.pop(MANIFEST, None)
            manifest = {"name": name, "files": {k: {"size": p.stat().st_size, "sha256": _sha256(p)}
                                                for k, p in files.items()}}
            (extra / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            files[MANIFEST] = extra / MANIFEST
            self._upload(files, final)
        return self._index(name, final, metrics or {}, parent_ref)

    def _upload(self, files: dict[str, Path], final: str) -> None:
        loc = parse(final)
        if loc.scheme == "file":  # stage in a hidden sibling folder, then one atomic rename
            dest = Path(loc.path)
            stage = dest.parent / f".tmp-{dest.name}"
            for rel, path in files.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, stage / rel)
            os.replace(stage, dest)
            return
        for rel, path in files.items():  # unique prefix; manifest last; invisible until indexed
            if rel == MANIFEST:
                continue
            with open(path, "rb") as fh, self.store.atomic_writer(join(final, rel)) as out:
                shutil.copyfileobj(fh, out, 1 << 20)
        self.store.write_bytes(join(final, MANIFEST), files[MANIFEST].read_bytes())

    def _index(self, name: str, uri: str, metrics: dict, parent: str | None) -> ModelRecord:
        for _ in range(20):
            taken = [_version_number(r.version) for r in self.state.list_models(name)]
            version = f"v{max(taken, default=0) + 1:04d}"
            try:
                return _record(self.state.register_model(name, version, uri, metrics=metrics, parent=parent))
            except StateError:
                continue  # a concurrent publisher took that number: take the next one
            except Exception as err:  # noqa: BLE001 - unique-constraint race on some backends
                if "unique" not in str(err).lower() and "duplicate" not in str(err).lower():
                    raise
        raise RegistryError(f"could not allocate a version number for {name!r}")

    def promote(self, ref: str) -> ModelRecord:
        """Mark a version as the promoted one of its name (one transaction; others unpromoted)."""
        rec = self.get(ref)
        return _record(self.state.promote_model(rec.name, rec.version))

    # ---- using ------------------------------------------------------------------------------
    def fetch(self, ref: str, dest: str | Path | None = None) -> Path:
        """A local folder with the version's files (the folder itself for a local root)."""
        rec = self.get(ref)
        loc = parse(rec.uri)
        if loc.scheme == "file" and dest is None:
            return Path(loc.path)
        target = Path(dest) if dest else self.cache_dir / "models" / rec.name / rec.version
        if (target / MANIFEST).is_file():
            return target
        prefix = rec.uri.rstrip("/") + "/"
        stage = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:6]}"
        for uri in self.store.list(prefix):
            rel = uri[len(prefix):]
            out = stage / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with self.store.open_read(uri) as fh, open(out, "wb") as fo:
                shutil.copyfileobj(fh, fo, 1 << 20)
        if not (stage / MANIFEST).is_file():
            shutil.rmtree(stage, ignore_errors=True)
            raise RegistryError(f"model {rec.ref} at {rec.uri} has no {MANIFEST} (incomplete upload)")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(stage, target)
        return target

    def load(self, ref: str, **kwargs: Any):
        """`presets.load_model` of a registry reference or a local model directory."""
        from model.presets import load_model

        if os.path.isdir(ref):
            return load_model(ref, **kwargs)
        return load_model(self.fetch(ref), **kwargs)
