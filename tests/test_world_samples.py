"""generate_samples, the world oracle and `sam3-engine world generate` (byte-identical output)."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from engine.cli import app
from engine.cli.world import generate
from engine.world.phrases import PhraseParseError, semantics
from engine.world.samples import WorldOracle, generate_samples
from storage.masks import instance_to_mask
from storage.saco import from_saco, read_saco

SAMPLES = list(generate_samples(6, seed=5, negatives_per_image=10))


def test_samples_hold_the_exact_ground_truth():
    oracle = WorldOracle()
    for sample in SAMPLES:
        scene = oracle.scene(sample.key)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(sample.image))), scene.image)
        assert (sample.width, sample.height) == (224, 224)
        positives = [p for p in sample.pairs if p.label == "positive"]
        negatives = [p for p in sample.pairs if p.label == "negative"]
        assert len(negatives) == 10 and len(positives) >= 5
        assert len({p.pair_id for p in sample.pairs}) == len(sample.pairs)
        for pair in sample.pairs:
            assert pair.is_instance_exhaustive and pair.is_pixel_exhaustive and pair.lineage.source == "gt"
            truth = oracle.instances(sample.key, pair.phrase)
            assert len(pair.instances) == len(truth)
            for inst, gt in zip(pair.instances, truth):
                assert np.array_equal(instance_to_mask(inst), gt.mask)
                assert inst.iscrowd == gt.iscrowd and inst.source == "gt"
    assert any(i.iscrowd for s in SAMPLES for p in s.pairs for i in p.instances)


def test_samples_independent_of_count_and_start():
    again = list(generate_samples(2, seed=5, negatives_per_image=10, start=4))
    assert [s.model_dump() for s in again] == [s.model_dump() for s in SAMPLES[4:]]
    other = next(generate_samples(1, seed=6))
    assert other.image != SAMPLES[0].image


def test_max_positives_and_all_mode():
    capped = next(generate_samples(1, seed=5, negatives_per_image=0, max_positives=4))
    assert [p.label for p in capped.pairs] == ["positive"] * 4
    full = next(generate_samples(1, seed=5, negatives_per_image=0, mode="all"))
    assert len(full.pairs) > len([p for p in SAMPLES[0].pairs if p.label == "positive"])
    with pytest.raises(ValueError, match="mode"):
        next(generate_samples(1, seed=5, mode="some"))


def test_oracle_errors():
    oracle = WorldOracle()
    with pytest.raises(PhraseParseError, match="elephant"):
        oracle.instances(SAMPLES[0].key, "pink elephant")
    with pytest.raises(ValueError, match="not a shapes-world media id"):
        oracle.scene("cat.jpg")
    assert not oracle.groundable("pink elephant") and oracle.groundable("pink shape")


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_generate_is_byte_identical(tmp_path):
    runner = CliRunner()
    args = ["world", "generate", "--images", "4", "--seed", "9", "--negatives-per-image", "5"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert str(tmp_path / "a" / "saco_gold.json") in first.output
    generate(str(tmp_path / "b"), images=4, seed=9, negatives_per_image=5, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b and len([k for k in a if k.endswith(".png")]) == 4
    generate(str(tmp_path / "c"), images=4, seed=10, negatives_per_image=5, progress=False)
    assert _files(tmp_path / "c")["saco_gold.json"] != a["saco_gold.json"]


def test_cli_gold_json_is_sa_co(tmp_path):
    generate(str(tmp_path), images=3, seed=2, domain="night", negatives_per_image=4, progress=False)
    doc = read_saco(str(tmp_path / "saco_gold.json"))
    pairs, metas = from_saco(doc)
    assert len(metas) == 3 and all((tmp_path / m.file_name).exists() for m in metas.values())
    per_image = {}
    for p in pairs:
        per_image.setdefault(p.media_id, []).append(p.label)
        semantics().parse(p.phrase)
    assert all(labels.count("negative") == 4 for labels in per_image.values())
    ann = doc["annotations"][0]
    assert 0 <= min(ann["bbox"]) and max(ann["bbox"]) <= 1 and ann["category_id"] == 1
    assert {"text_input", "is_instance_exhaustive", "is_pixel_exhaustive"} <= set(doc["images"][0])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["domain"] == "night" and manifest["images"] == 3


def test_cli_rejects_unknown_domain(tmp_path):
    result = CliRunner().invoke(app, ["world", "generate", "--out", str(tmp_path), "--images", "1", "--domain", "moon"])
    assert result.exit_code != 0 and "moon" in result.output
