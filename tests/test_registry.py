"""Model registry: publish / list / get / promote / fetch / load, on local disk and SeaweedFS S3."""

import json
from pathlib import Path

import pytest

from model.registry import MANIFEST, ModelRegistry, RegistryError


def _fake_model_dir(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "sam3", "tag": tag}))
    (path / "model.safetensors").write_bytes(b"weights-" + tag.encode())
    (path / "tokenizer_config.json").write_text("{}")
    return path


def _exercise(reg: ModelRegistry, tmp_path: Path) -> None:
    a = reg.publish("tiny", _fake_model_dir(tmp_path / "a", "a"), metrics={"cgF1": 1.5},
                    shards=["s3://b/train-000000.tar"], config={"lr": 0.001})
    b = reg.publish("tiny", _fake_model_dir(tmp_path / "b", "b"), metrics={"cgF1": 42.0}, parent="tiny:v0001")
    assert (a.version, b.version) == ("v0001", "v0002")
    assert [r.ref for r in reg.list("tiny")] == ["tiny:v0001", "tiny:v0002"]
    assert reg.get("tiny").version == "v0002"  # nothing promoted: the latest
    assert reg.get("tiny:1").uri == a.uri and reg.get("tiny:latest").uri == b.uri
    lineage = reg.lineage("tiny:v0002")
    assert lineage["parent"] == "tiny:v0001" and reg.get("tiny:v0002").parent == "tiny:v0001"
    assert reg.lineage("tiny:v0001")["shards"] == ["s3://b/train-000000.tar"]
    assert reg.lineage("tiny:v0001")["config"] == {"lr": 0.001}
    assert reg.metrics("tiny:v0002") == {"cgF1": 42.0}

    reg.promote("tiny:v0001")
    assert reg.get("tiny").version == "v0001" and reg.get("tiny@promoted").version == "v0001"
    reg.promote("tiny:v0002")
    assert [r.promoted for r in reg.list("tiny")] == [False, True]

    local = reg.fetch("tiny:v0001", tmp_path / "fetched")
    assert (local / "model.safetensors").read_bytes() == b"weights-a"
    manifest = json.loads((local / MANIFEST).read_text())
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "metrics.json", "lineage.json"}

    with pytest.raises(RegistryError, match="not registered"):
        reg.get("other")
    with pytest.raises(RegistryError, match="no version"):
        reg.get("tiny:v0009")
    with pytest.raises(RegistryError, match="not a save_pretrained folder"):
        reg.publish("tiny", tmp_path)
    with pytest.raises(RegistryError, match="model name"):
        reg.publish("bad name!", tmp_path / "a")


def test_registry_local(tmp_path):
    reg = ModelRegistry(str(tmp_path / "root"))
    _exercise(reg, tmp_path)
    # versions live under <root>/models/<name>/ and no staging folder is left behind
    folders = list((tmp_path / "root" / "models" / "tiny").iterdir())
    assert len(folders) == 2 and not [f for f in folders if f.name.startswith(".")]
    # a new registry object over the same root and index sees the same versions
    assert [r.ref for r in ModelRegistry(str(tmp_path / "root")).list()] == ["tiny:v0001", "tiny:v0002"]


def test_registry_unindexed_upload_is_invisible(tmp_path):
    reg = ModelRegistry(str(tmp_path / "root"))
    orphan = tmp_path / "root" / "models" / "tiny" / "20250101T000000-deadbeef"
    _fake_model_dir(orphan, "orphan")  # files without an index row: a crashed publish
    assert reg.list() == []
    assert reg.publish("tiny", _fake_model_dir(tmp_path / "a", "a")).version == "v0001"


def test_registry_tiny_model_roundtrip(tmp_path):
    import torch

    from model.presets import build_tiny, save_model

    loaded = build_tiny(seed=0)
    save_model(loaded, tmp_path / "m")
    reg = ModelRegistry(str(tmp_path / "root"))
    rec = reg.publish("tiny", tmp_path / "m", metrics={"cgF1": 0.0})
    back = reg.load(rec.ref)
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, back.model.state_dict()[k])
    assert back.tokenizer("red circle")["input_ids"] == loaded.tokenizer("red circle")["input_ids"]


@pytest.mark.services
def test_registry_s3(seaweedfs, tmp_path):
    import uuid

    from storage.objectstore import ObjectStore

    root = f"s3://sam3-test/registry-{uuid.uuid4().hex[:8]}"
    store = ObjectStore(root=root, s3=seaweedfs.s3_config(max_attempts=2))
    with pytest.raises(RegistryError, match="needs a state store"):
        ModelRegistry(store)
    reg = ModelRegistry(store, state=f"sqlite:///{tmp_path / 'state.db'}", cache_dir=tmp_path / "cache")
    _exercise(reg, tmp_path)
    assert all(r.uri.startswith(root + "/models/tiny/") for r in reg.list())
    assert (reg.fetch("tiny:v0002") / "model.safetensors").read_bytes() == b"weights-b"


def test_retrain_publishes_with_lineage(tmp_path):
    from engine.world.samples import generate_samples
    from model.retrain import retrain
    from storage.saco import ImageMeta, to_saco
    from storage.shards import write_shards

    shards = write_shards(generate_samples(2, seed=7, negatives_per_image=2), str(tmp_path / "shards"), "train")
    gold_samples = list(generate_samples(1, seed=8, negatives_per_image=2))
    gold = to_saco([p for s in gold_samples for p in s.pairs],
                   {s.key: ImageMeta(file_name=f"{s.key}.png", height=s.height, width=s.width) for s in gold_samples})
    images = {f"{s.key}.png": s.image for s in gold_samples}
    reg = ModelRegistry(str(tmp_path / "root"))
    config = {"checkpoint_every": 0, "sampling": {"positives_per_image": 1, "negatives_per_image": 1,
                                                  "hard_negatives_per_image": 0, "images_per_batch": 1}}
    first, _ = retrain(shards, "tiny", reg, steps=2, gold=gold, gold_images=images, config=config, promote=True)
    assert first.version == "v0001" and first.promoted and "cgF1" in first.metrics
    second, result = retrain(str(tmp_path / "shards"), "tiny", reg, steps=1, parent="tiny", config=config)
    assert result.step == 1
    lineage = reg.lineage(second.ref)
    assert lineage["parent"] == "tiny:v0001" and second.parent == "tiny:v0001"
    assert lineage["shards"] == [str(tmp_path / "shards")] and lineage["config"]["init_from"]
