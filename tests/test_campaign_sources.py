"""Media sources -> work units: shapes world, folder, S3 prefix (SeaweedFS), WebDataset shards; and a
campaign whose storage root is on S3 (parts, markers, media, exports, shards, registry)."""

import io
import uuid

from PIL import Image

from engine.campaign import steps
from engine.campaign.config import parse_config
from engine.campaign.exports import final_pairs
from engine.campaign.layout import Layout
from engine.campaign.models import registry
from engine.campaign.sources import materialise, phase_items, phase_units
from engine.campaign.steps import open_campaign
from storage.objectstore import ObjectStore
from storage.saco import read_saco
from tests.campaign_support import TINY, merge, write_config


def png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_shapes_units_are_fixed_slices():
    cfg = parse_config(merge(TINY, {"root": "/tmp/unused", "phases": [
        {"index": 1, "mode": "human", "images": 5, "per_unit": 2},
        {"index": 2, "mode": "hybrid", "images": 3, "per_unit": 2},
        {"index": 3, "mode": "hybrid", "domain": "night", "images": 2, "per_unit": 2}]}))
    units = phase_units(cfg, 1)
    assert list(units) == ["u00000", "u00001", "u00002"] and [len(v) for v in units.values()] == [2, 2, 1]
    assert [i.index for i in phase_items(cfg, 2)] == [5, 6, 7]  # after phase 1 in the same domain
    assert [i.index for i in phase_items(cfg, 3)] == [0, 1] and phase_items(cfg, 3)[0].domain == "night"


def test_s3_prefix_and_webdataset_sources(tmp_path, seaweedfs, monkeypatch):
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    prefix = f"s3://sam3-test/photos-{uuid.uuid4().hex[:6]}"
    store = ObjectStore(fsync=False)
    for name, colour in (("b.png", "blue"), ("a.png", "red"), ("skip.txt", None)):
        store.write_bytes(f"{prefix}/{name}", png(colour) if colour else b"text")
    cfg = parse_config(merge(TINY, {"root": str(tmp_path / "root"), "source": {"kind": "s3", "prefix": prefix},
                                    "proposer": {"kind": "ontology", "source": "common_objects"},
                                    "phases": [{"index": 1, "mode": "human", "domain": "photos", "images": 5}]}))
    items = phase_items(cfg, 1)
    assert [i.media_id for i in items] == ["s3:a.png", "s3:b.png"]
    uri, w, h, data = materialise(cfg, Layout(cfg), items[0])
    assert (uri, w, h) == (f"{prefix}/a.png", 40, 30) and data == png("red")

    from engine.cli.world import write_world_shards

    shards = write_world_shards(str(tmp_path / "shards"), 3, seed=1, negatives_per_image=1, max_samples=2)
    cfg = parse_config(merge(TINY, {"root": str(tmp_path / "root"), "source": {"kind": "webdataset", "shards": shards},
                                    "proposer": {"kind": "ontology", "source": "shapes"},
                                    "phases": [{"index": 1, "mode": "human", "domain": "base", "images": 2, "start": 1}]}))
    items = phase_items(cfg, 1)
    assert [i.index for i in items] == [1, 2] and all(i.media_id.startswith("wds:shapes-base-") for i in items)
    uri, w, h, data = materialise(cfg, Layout(cfg), items[1])
    assert uri.startswith((tmp_path / "root" / "media" / "base").as_uri() + "/") and (w, h) == (224, 224)
    assert Layout(cfg).store.read_bytes(uri) == data


def test_campaign_with_an_s3_root(tmp_path, seaweedfs, monkeypatch):
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SAM3_ENGINE_CACHE", str(tmp_path / "cache"))
    root = f"s3://sam3-test/campaign-{uuid.uuid4().hex[:6]}"
    path = write_config(tmp_path, name="s3root", root=root, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                        phases=[{"index": 1, "mode": "human", "images": 3, "per_unit": 2},
                                {"index": 2, "mode": "hybrid", "images": 2, "per_unit": 2}])
    out = steps.run_campaign(str(path))
    # phase 2's verifiers were trained on phase 1's humans and published to the registry on S3
    c = open_campaign(str(path))
    ver = c.layout.done(c.layout.step_marker(2, "verifiers"))
    assert ver["dir"] == "s3root-verifiers:v0001" and ver["thresholds"]
    pairs = final_pairs(c.layout, 2, list(phase_units(c.cfg, 2, c.layout.store)))
    assert pairs and all(any("s3root-verifiers:v0001" in v for v in p.lineage.verifier_versions.values())
                         for p in pairs), [p.lineage.verifier_versions for p in pairs]
    cons = out["phases"][1]["consolidate"]
    assert cons["export"].startswith(root) and all(s.startswith(root) for s in cons["shards"])
    doc = read_saco(cons["export"])
    assert len(doc["images"]) == cons["pairs"] > 0
    assert all(e["file_name"].startswith("media/base/") for e in doc["images"])
    c = open_campaign(str(path))
    assert c.layout.store.exists(c.layout.unit_marker(1, "annotate", "u00001"))
    assert out["report"]["json"].startswith(root)
    again = steps.run_campaign(str(path))
    assert all(again["phases"][1][s]["ran"] == 0 for s in ("plan", "propose", "annotate", "consolidate"))
    assert [r.version for r in registry(c.cfg).list("s3root-verifiers")] == ["v0001"]
