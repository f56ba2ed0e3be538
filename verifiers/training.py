"""Training learned verifiers from human decision logs: decisions -> examples -> features -> models.

`train_verifiers(decisions, contexts=ContextProvider(loaded), media=resolver)` builds MV and EV
examples (`verifiers.examples`, corrections included), computes their features with the current
model's outputs (one vision pass per image), fits the phrase PCA on the training phrases and one
calibrated `TaskModel` per task (every rater's vote is a training row), and returns a
`VerifierSet` ready to save or publish. Items whose image or masks cannot be read are left out and
counted in `info["feature_errors"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from verifiers.decisions import Decision
from verifiers.embedding import PhraseFeatures
from verifiers.examples import Example, ExampleSet, build_examples
from verifiers.learned import FeatureBuilder, Item, TaskModel
from verifiers.store import VerifierSet


def media_resolver(
    examples: Iterable[Example], media: Callable[[str], Any] | None
) -> Callable[[str], Any]:
    """media id -> image: the example's `media_uri` (read through the object store) first, else `media`."""
    uris = {e.media_id: e.media_uri for e in examples if e.media_uri}

    def resolve(media_id: str):
        uri = uris.get(media_id)
        if uri:
            from storage.objectstore import default_store

            return default_store().read_bytes(uri)
        return media(media_id) if media else None

    return resolve


def example_features(
    task: str, examples: Sequence[Example], builder: FeatureBuilder
) -> tuple[np.ndarray, dict]:
    items = [Item(e.media_id, e.phrase, e.masks) for e in examples]
    return builder.rows(task, items)


def train_verifiers(
    decisions: Iterable[Decision] | ExampleSet,
    *,
    contexts=None,
    media: Callable[[str], Any] | None = None,
    tasks: Sequence[str] = ("mv", "ev"),
    embedder: str = "minilm",
    dims: int = 16,
    seed: int = 0,
    params: dict | None = None,
    use_corrections: bool = True,
    info: dict | None = None,
) -> VerifierSet:
    """Train the verifiers of `tasks` (see module docstring)."""
    examples = (
        decisions
        if isinstance(decisions, ExampleSet)
        else build_examples(decisions, use_corrections=use_corrections)
    )
    chosen = {t: examples.of(t) for t in tasks if examples.of(t)}
    if not chosen:
        raise ValueError(f"no examples for tasks {list(tasks)} in the decisions")
    all_examples = [e for exs in chosen.values() for e in exs]
    phrases = PhraseFeatures(embedder, dims).fit([e.phrase for e in all_examples])
    builder = FeatureBuilder(phrases, contexts, media_resolver(all_examples, media))
    models, meta = (
        {},
        {"examples": {}, "feature_errors": {}, "skipped_votes": dict(examples.skipped)},
    )
    for task, exs in chosen.items():
        X, errors = example_features(task, exs, builder)
        rows, ys, groups = [], [], []
        for i, e in enumerate(exs):
            if i in errors:
                continue
            for vote in e.votes:
                rows.append(i)
                ys.append(vote)
                groups.append(e.media_id)
        models[task] = TaskModel.fit(
            task, X[rows], ys, groups, builder.names(task), seed=seed, params=params
        )
        meta["examples"][task] = {
            "tasks": len(exs),
            "votes": len(ys),
            "from_corrections": sum(e.source == "correction" for e in exs),
        }
        meta["feature_errors"][task] = len(errors)
    meta["feature_model"] = getattr(contexts, "model_version", None)
    return VerifierSet(models, phrases, {**meta, **(info or {})})
