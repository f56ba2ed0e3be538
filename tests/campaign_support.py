"""Helpers for the campaign tests: tiny campaign configs written as YAML."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

TINY = {
    "name": "tiny",
    "seed": 0,
    "proposer": {"kind": "world", "positives": 3, "negatives": 3},
    "model": {"name": "tiny-model"},
    "verifiers": {"target_precision": 0.9, "min_support": 3, "spot_check_rate": 0.2},
    "humans": {"backend": "simulated"},
    "retrain": {"enabled": False, "gold_images": 0},
    "phases": [
        {"index": 1, "mode": "human", "domain": "base", "images": 4, "per_unit": 2},
        {"index": 2, "mode": "hybrid", "domain": "base", "images": 4, "per_unit": 2},
    ],
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("proposer", "source"):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def write_config(folder: Path, **over) -> Path:
    """A campaign YAML under `folder` with root `folder/root`; keyword arguments override TINY."""
    data = merge({**TINY, "root": str(folder / "root")}, over)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_text(uri: str) -> str:
    """The text of a local file given as a path or file:// URI."""
    return Path(uri.removeprefix("file://")).read_text()
