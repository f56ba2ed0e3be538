"""Campaign configuration: one YAML file, validated by pydantic; errors name the field and the value.

```yaml
name: shapes-demo
root: out/demo                     # storage root: a folder or s3://bucket/prefix
state_url: null                    # SQLAlchemy URL; default sqlite:///<root>/state.db (local root only)
seed: 0
source: {kind: shapes, image_size: 224, seed: 0}       # shapes | folder | s3 | webdataset
proposer: {kind: world, positives: 8, negatives: 8}    # world (captioner stand-in) or an ontology proposer
model: {name: campaign-tiny, init: null, preset: tiny} # registry name; init: a ref/dir, else a fresh preset
verifiers: {target_precision: 0.95, spot_check_rate: 0.05, init: null}
humans: {backend: simulated, raters: 1, deadline_s: 3600}
budgets: {human_seconds: null, money: null}
costs: {human_hour_usd: 20, gpu_hour_usd: 2.5, compute_device: cpu}
executor: {kind: inline}           # inline | ray (embedded, or `address:` of a running cluster)
retrain: {enabled: true, steps: 200, max_time_s: 120, gold_images: 10}
phases:
  - {index: 1, mode: human, domain: base, images: 12}
  - {index: 2, mode: hybrid, domain: base, images: 12, hard_negatives: true}
  - {index: 3, mode: hybrid, domain: night, images: 12}   # mode syn: no humans at all
```

`load_config(uri)` reads YAML from a path or URI (object store), resolves a relative local `root`
against the current directory and raises `ConfigError` whose message names each bad field and value.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class ConfigError(ValueError):
    """A campaign config that cannot be used; the message names the field(s) and value(s)."""


class _Strict(BaseModel):
    model_config = {"extra": "forbid"}


class ShapesSource(_Strict):
    kind: Literal["shapes"] = "shapes"
    seed: int = Field(0, ge=0, description="world seed: image i of a domain depends only on (seed, i)")
    image_size: int = Field(224, ge=32, le=2048)


class FolderSource(_Strict):
    kind: Literal["folder"]
    path: str = Field(description="folder of images, referenced in place")
    extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png", ".bmp", ".webp"])


class S3Source(_Strict):
    kind: Literal["s3"]
    prefix: str = Field(description="s3://bucket/prefix/ holding the images")
    extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png", ".bmp", ".webp"])

    @field_validator("prefix")
    @classmethod
    def _s3(cls, v: str) -> str:
        if not v.startswith("s3://"):
            raise ValueError(f"must start with s3://, got {v!r}")
        return v


class WebDatasetSource(_Strict):
    kind: Literal["webdataset"]
    shards: list[str] = Field(min_length=1, description="tar shard URIs (images are copied to <root>/media)")


MediaSource = Annotated[ShapesSource | FolderSource | S3Source | WebDatasetSource, Field(discriminator="kind")]


class WorldProposer(_Strict):
    """Captioner stand-in for the shapes world: phrases of the image's own concepts plus negatives."""

    kind: Literal["world"] = "world"
    positives: int = Field(8, ge=0, description="positive phrases per image (at most)")
    negatives: int = Field(8, ge=0, description="negative phrases per image")
    hard_fraction: float = Field(0.0, ge=0, le=1, description="share of negatives that are hard ones")


class ModelSettings(_Strict):
    name: str = Field("campaign-model", pattern=_NAME, description="registry name of the campaign's model")
    init: str | None = Field(None, description="registry ref, save_pretrained dir, or 'base' (the shipped "
                             "tiny base model, model/weights/tiny-base); default a fresh preset")
    preset: Literal["tiny"] = "tiny"
    mask_score: float = Field(0.3, ge=0, le=1, description="predicted masks at or above this go to MV")
    max_masks: int = Field(8, ge=1, le=200, description="masks per pair sent to MV")
    batch_size: int = Field(16, ge=1)


class VerifierSettings(_Strict):
    init: str | None = Field(None, description="a verifier set folder used until the campaign trains its own")
    target_precision: float = Field(0.95, gt=0, le=1, description="precision of auto-accept/reject")
    min_support: int = Field(8, ge=1, description="items a threshold must cover on the calibration slice")
    calibration_fraction: float = Field(0.3, gt=0, lt=1, description="human decisions held out to calibrate")
    spot_check_rate: float = Field(0.05, ge=0, le=1, description="share of AI decisions audited by humans")
    embedder: str = "minilm"


class HumanSettings(_Strict):
    backend: Literal["simulated", "label_studio", "none"] = "simulated"
    label_studio: dict[str, Any] = Field(default_factory=dict,
                                         description="label_studio: LabelStudioSettings fields (url, api_key, ...)")
    raters: int = Field(1, ge=1, le=5)
    deadline_s: float = Field(3600, gt=0, description="a task unanswered this long is re-queued")
    seed: int = 0
    mv_error_rate: float = Field(0.05, ge=0, le=1)
    ev_error_rate: float = Field(0.05, ge=0, le=1)


class Budgets(_Strict):
    human_seconds: float | None = Field(None, gt=0)
    money: float | None = Field(None, gt=0, description="USD for human time (costs.human_hour_usd)")


class Costs(_Strict):
    human_hour_usd: float = Field(20.0, ge=0)
    gpu_hour_usd: float = Field(2.5, ge=0)
    cpu_hour_usd: float = Field(0.05, ge=0)
    compute_device: Literal["cpu", "gpu"] = "cpu"


class ExecutorSettings(_Strict):
    kind: Literal["inline", "ray"] = "inline"
    address: str | None = Field(None, description="ray only: a cluster address; default an embedded Ray")
    num_cpus: int = Field(2, ge=1, description="embedded Ray only")
    predictor_actors: int = Field(1, ge=1)
    verifier_actors: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ExecutorSettings:
        if self.address and self.kind != "ray":
            raise ValueError(f"address {self.address!r} is only used with kind 'ray' (kind is {self.kind!r})")
        return self


class RetrainSettings(_Strict):
    enabled: bool = True
    steps: int = Field(200, ge=1)
    max_time_s: float | None = Field(120, gt=0, description="wall-clock cap per retrain (None: steps only)")
    workers: int = Field(0, ge=0, description="Ray Train workers (0: in-process)")
    gold_images: int = Field(10, ge=0, description="shapes world: gold images generated per domain")
    gold_negatives: int = Field(8, ge=0)
    gold: dict[str, str] = Field(default_factory=dict, description="domain -> SA-Co gold JSON URI (other sources)")
    cumulative: bool = Field(True, description="train on the shards of every phase so far")


class PhaseSettings(_Strict):
    index: int = Field(ge=1, le=9)
    mode: Literal["human", "hybrid", "syn"]
    domain: str = "base"
    images: int = Field(ge=0, description="media items this phase annotates")
    start: int | None = Field(None, ge=0, description="first item of the source; default after earlier phases")
    per_unit: int = Field(4, ge=1, description="media items per work unit")
    hard_negatives: bool = Field(False, description="mine hard negatives with the current model")
    retrain: bool = True


class CampaignConfig(_Strict):
    name: str = Field(pattern=_NAME)
    root: str
    state_url: str | None = None
    seed: int = Field(0, ge=0)
    source: MediaSource = Field(default_factory=ShapesSource)
    proposer: dict[str, Any] = Field(default_factory=lambda: {"kind": "world"})
    model: ModelSettings = Field(default_factory=ModelSettings)
    verifiers: VerifierSettings = Field(default_factory=VerifierSettings)
    humans: HumanSettings = Field(default_factory=HumanSettings)
    budgets: Budgets = Field(default_factory=Budgets)
    costs: Costs = Field(default_factory=Costs)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    phases: list[PhaseSettings] = Field(min_length=1)

    @field_validator("proposer")
    @classmethod
    def _proposer(cls, v: dict) -> dict:
        if v.get("kind", "world") == "world":
            return WorldProposer(**v).model_dump()
        from ontology.proposers import parse_proposer_config

        parse_proposer_config(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        idx = [p.index for p in self.phases]
        if idx != sorted(set(idx)):
            raise ValueError(f"phases: indices must be unique and increasing, got {idx}")
        if self.proposer.get("kind", "world") == "world" and self.source.kind != "shapes":
            raise ValueError(f"proposer.kind 'world' needs source.kind 'shapes' (source.kind is {self.source.kind!r})")
        if self.source.kind == "shapes":
            from engine.world import domains

            for p in self.phases:
                if p.domain not in domains():
                    raise ValueError(f"phases[{p.index}].domain {p.domain!r} is not a world domain "
                                     f"({', '.join(domains())})")
        has_humans = self.humans.backend != "none"
        for k, p in enumerate(self.phases):
            if p.mode in ("human", "hybrid") and not has_humans:
                raise ValueError(f"phases[{k}].mode {p.mode!r} needs humans but humans.backend is 'none'")
            earlier_humans = any(q.mode != "syn" for q in self.phases[:k])
            if p.mode in ("hybrid", "syn") and self.verifiers.init is None and not earlier_humans:
                raise ValueError(f"phases[{k}].mode {p.mode!r} needs verifiers: an earlier phase with "
                                 "human decisions to train them on, or verifiers.init")
        if self.state_url is None and self.root.startswith("s3://"):
            raise ValueError(f"state_url is required with an S3 root ({self.root!r})")
        return self

    # ---- derived ------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.state_url or f"sqlite:///{os.path.join(self.root, 'state.db')}"

    def phase(self, index: int) -> PhaseSettings:
        for p in self.phases:
            if p.index == index:
                return p
        raise ConfigError(f"campaign {self.name!r} has no phase {index!r} (phases: {[p.index for p in self.phases]})")

    def phase_start(self, index: int) -> int:
        """First source item of a phase: its `start`, else after the earlier phases of its domain."""
        p = self.phase(index)
        if p.start is not None:
            return p.start
        same = [q for q in self.phases if q.index < index and (self.source.kind != "shapes" or q.domain == p.domain)]
        return sum(q.images for q in same)

    def domains(self) -> list[str]:
        return list(dict.fromkeys(p.domain for p in self.phases))


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return data


def format_errors(err: ValidationError, data: Any, where: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x in (
            "shapes", "folder", "s3", "webdataset")))
        field = ".".join(str(x) for x in loc) or "<config>"
        value = e.get("input", _value_at(data, loc)) if loc else "<config>"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"field {field!r} (value {value!r:.120}): {msg}")
    return f"campaign config {where}: " + "; ".join(lines)


def parse_config(data: Any, where: str = "<dict>") -> CampaignConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"campaign config {where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        cfg = CampaignConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, data, where)) from None
    if "://" not in cfg.root:
        cfg = cfg.model_copy(update={"root": os.path.abspath(cfg.root)})
    if cfg.root.startswith("file://"):
        cfg = cfg.model_copy(update={"root": cfg.root[len("file://"):]})
    src = cfg.source
    if src.kind == "folder" and "://" not in src.path:
        cfg = cfg.model_copy(update={"source": src.model_copy(update={"path": os.path.abspath(src.path)})})
    return cfg


def load_config(uri: str) -> CampaignConfig:
    """The validated config of a YAML file (path or object-store URI); ConfigError on any problem."""
    uri = str(uri)
    try:
        if "://" in uri and not uri.startswith("file://"):
            from storage.objectstore import default_store

            text = default_store().read_bytes(uri).decode()
        else:
            with open(uri.removeprefix("file://"), encoding="utf-8") as fh:
                text = fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"campaign config {uri!r} cannot be read: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"campaign config {uri!r} is not valid YAML: {err}") from None
    return parse_config(data, repr(uri))


def dump_config(cfg: CampaignConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
