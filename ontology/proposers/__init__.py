"""Noun-phrase proposers behind one interface, chosen by `kind` in config.

```yaml
proposer:
  kind: ontology            # ontology | model | openai | local_lm
  per_image: 16
  source: shapes            # ontology source (see ontology.loaders.load_source)
  sampler: {noun_root: shape, facets: [size, pattern, colour],
            templates: ["{noun}", "{colour} {noun}", "{size} {pattern} {colour} {noun}"]}
```

`build_proposer(config, graph=..., predictor=...)` validates the config (pydantic; errors name the
field and value) and returns a `BaseProposer`: `OntologySampler`, `ModelLoopProposer` (needs a
predictor, samples `candidates` phrases with the sampler settings), or `LLMProposer` over an
OpenAI-compatible server (`openai`) or a local transformers model folder (`local_lm`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from ontology.graph import ConceptGraph
from ontology.normalise import NormaliserConfig, PhraseNormaliser
from ontology.proposers.base import BaseProposer, Dropped, Proposal, ProposalBatch, ProposalRequest
from ontology.proposers.sampler import BUNDLED_SAMPLERS, OntologySampler, SamplerSettings

__all__ = [
    "BaseProposer", "Dropped", "Proposal", "ProposalBatch", "ProposalRequest", "ProposerConfig",
    "build_proposer", "parse_proposer_config",
]


class _Common(BaseModel):
    model_config = {"extra": "forbid"}
    per_image: int = Field(16, ge=1, le=1000)
    normaliser: NormaliserConfig = Field(default_factory=NormaliserConfig)


class OntologyProposerConfig(_Common):
    kind: Literal["ontology"] = "ontology"
    source: str = "shapes"
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)


class ModelProposerConfig(_Common):
    kind: Literal["model"]
    source: str = "shapes"
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    candidates: int = Field(64, ge=1, description="phrases scored per image")
    keep_top: int = Field(8, ge=1)
    score_threshold: float = Field(0.5, ge=0, le=1)
    presence_threshold: float = Field(0.5, ge=0, le=1)
    relatives_per_phrase: int = Field(2, ge=0)


class OpenAIProposerConfig(_Common):
    kind: Literal["openai"]
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(512, ge=16)
    timeout_s: float = Field(60, gt=0)
    send_image: bool = True
    extra_body: dict[str, Any] = Field(default_factory=dict, description="e.g. vLLM sampling extras")


class LocalLMProposerConfig(_Common):
    kind: Literal["local_lm"]
    model_dir: str
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    seed: int = 0
    device: str = "cpu"


ProposerConfig = Annotated[
    OntologyProposerConfig | ModelProposerConfig | OpenAIProposerConfig | LocalLMProposerConfig,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter = TypeAdapter(ProposerConfig)


def parse_proposer_config(config: dict | BaseModel) -> BaseModel:
    """Validate a proposer config dict (pydantic ValidationError names the bad field and value)."""
    return config if isinstance(config, BaseModel) else _ADAPTER.validate_python(config)


def build_proposer(config: dict | BaseModel, graph: ConceptGraph | None = None, predictor: Any = None,
                   coverage: Any = None) -> BaseProposer:
    cfg = parse_proposer_config(config)
    normaliser = PhraseNormaliser(cfg.normaliser)
    if cfg.kind in ("ontology", "model"):
        if graph is None:
            from ontology.loaders import load_source

            graph = load_source(cfg.source)
        if "sampler" not in cfg.model_fields_set and cfg.source in BUNDLED_SAMPLERS:
            cfg = cfg.model_copy(update={"sampler": SamplerSettings(**BUNDLED_SAMPLERS[cfg.source])})
    if cfg.kind == "ontology":
        return OntologySampler(graph, cfg.sampler, cfg.per_image, coverage, normaliser)
    if cfg.kind == "model":
        if predictor is None:
            raise ValueError("proposer kind 'model' needs a predictor (model.predictor.Predictor)")
        from ontology.proposers.model_loop import ModelLoopProposer

        candidates = OntologySampler(graph, cfg.sampler, cfg.candidates, coverage, normaliser)
        return ModelLoopProposer(graph, predictor, candidates, cfg.per_image, cfg.keep_top,
                                 cfg.score_threshold, cfg.presence_threshold, cfg.relatives_per_phrase,
                                 normaliser)
    from ontology.proposers.llm import LLMProposer, OpenAIGenerator

    if cfg.kind == "openai":
        from ontology.llm import ChatClient

        client = ChatClient(cfg.base_url, cfg.model, api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s,
                            extra_body=cfg.extra_body)
        gen = OpenAIGenerator(client, cfg.temperature, cfg.max_tokens)
        return LLMProposer(gen, cfg.per_image, cfg.send_image, normaliser, name="openai")
    from ontology.proposers.local_lm import LocalLMGenerator

    gen = LocalLMGenerator(cfg.model_dir, cfg.max_new_tokens, cfg.temperature, cfg.seed, cfg.device)
    return LLMProposer(gen, cfg.per_image, False, normaliser, name="local_lm")
