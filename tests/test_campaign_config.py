"""Campaign config: YAML -> CampaignConfig; every error names the field and the bad value."""

import pytest
import yaml

from engine.campaign.config import CampaignConfig, ConfigError, load_config, parse_config
from tests.campaign_support import TINY, merge, write_config


def test_loads_defaults_and_resolves_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_config(merge(TINY, {"root": "rel/root"}))
    assert cfg.root == str(tmp_path / "rel" / "root")
    assert cfg.state == f"sqlite:///{tmp_path / 'rel' / 'root' / 'state.db'}"
    assert cfg.executor.kind == "inline" and cfg.source.kind == "shapes"
    assert cfg.phase_start(2) == 4  # phase 2 continues after phase 1's images of the same domain
    assert [p.mode for p in cfg.phases] == ["human", "hybrid"]
    assert "phases" in CampaignConfig.model_json_schema()["properties"]


@pytest.mark.parametrize("over, field, value", [
    ({"phases": [{"index": 1, "mode": "robot", "images": 2}]}, "phases.0.mode", "robot"),
    ({"executor": {"kind": "spark"}}, "executor.kind", "spark"),
    ({"verifiers": {"target_precision": 1.5}}, "verifiers.target_precision", "1.5"),
    ({"humans": {"raters": 0}}, "humans.raters", "0"),
    ({"source": {"kind": "s3", "prefix": "bucket/x"}}, "source.prefix", "bucket/x"),
    ({"source": {"kind": "ftp"}}, "source", "ftp"),
    ({"name": "bad name!"}, "name", "bad name!"),
    ({"phases": [{"index": 1, "mode": "human", "domain": "mars", "images": 2}]}, "phases", "mars"),
    ({"model": {"colour": "red"}}, "model.colour", "red"),
])
def test_errors_name_field_and_value(tmp_path, over, field, value):
    path = write_config(tmp_path, **over)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    msg = str(err.value)
    assert repr(field) in msg or field in msg, msg
    assert value in msg, msg
    assert str(path) in msg


def test_semantic_errors(tmp_path):
    with pytest.raises(ConfigError, match="hybrid.*needs verifiers"):
        parse_config(merge(TINY, {"root": "/x", "phases": [{"index": 1, "mode": "hybrid", "images": 2}]}))
    with pytest.raises(ConfigError, match="humans.backend is 'none'"):
        parse_config(merge(TINY, {"root": "/x", "humans": {"backend": "none"}}))
    with pytest.raises(ConfigError, match="state_url is required"):
        parse_config(merge(TINY, {"root": "s3://bucket/x"}))
    with pytest.raises(ConfigError, match="proposer.kind 'world' needs source.kind 'shapes'"):
        parse_config(merge(TINY, {"root": "/x", "source": {"kind": "folder", "path": "/tmp"}}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(str(tmp_path / "missing.yaml"))
    listy = tmp_path / "list.yaml"
    listy.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(listy))


def test_frozen_config_guards_a_started_campaign(tmp_path):
    from engine.campaign import steps

    path = write_config(tmp_path, name="frozen", phases=[{"index": 1, "mode": "human", "images": 1}])
    out = steps.start(str(path))
    frozen = tmp_path / "root" / "campaigns" / "frozen" / "campaign.yaml"
    assert out["config"] == f"file://{frozen}" and frozen.is_file()
    # a frozen file written before a field existed (its default applies) still resumes
    data = yaml.safe_load(frozen.read_text())
    del data["humans"]["label_studio"]
    frozen.write_text(yaml.safe_dump(data, sort_keys=False))
    assert steps.start(str(path))["campaign"] == "frozen"
    # a real change is refused, naming the field
    changed = write_config(tmp_path, name="frozen", seed=7, phases=[{"index": 1, "mode": "human", "images": 1}])
    with pytest.raises(ConfigError, match="fields that differ: seed"):
        steps.start(str(changed))
