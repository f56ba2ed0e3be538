"""Resume: `sam3-engine campaign run` is SIGKILLed at several points mid-phase (a fault hook makes the
process kill itself right after its n-th finished unit of a step); rerunning finishes with no lost and
no duplicated pair, no duplicated human task, and exports identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
from collections import Counter

from engine.campaign import steps
from engine.campaign.exports import final_pairs
from engine.campaign.steps import open_campaign
from tests.campaign_support import write_config

# (step, n): killed after the n-th unit of that step this process finishes (await_humans: the n-th round
# that applied results). Phases 1 and 2 have units u00000 and u00001; the run resumes each time, so the
# second "annotate:1" and "await_humans:1" land in phase 2.
KILLS = ["plan:1", "annotate:1", "await_humans:1", "consolidate:1", "annotate:1", "await_humans:1"]
CLI = [sys.executable, "-c", "from engine.cli import main; main()"]


def run_cli(path, fault=None):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    env.pop("SAM3_ENGINE_FAULT", None)
    if fault:
        env["SAM3_ENGINE_FAULT"] = fault
    return subprocess.run([*CLI, "campaign", "run", str(path), "--quiet"], check=False, env=env, capture_output=True,
                          text=True, timeout=600)


def export_texts(path):
    c = open_campaign(str(path))
    return {k: c.layout.store.read_bytes(c.layout.export(k)).decode() for k in (1, 2)}


def test_sigkill_at_several_points_then_resume(tmp_path):
    over = {"verifiers": {"embedder": "hashing"}}
    ref_path = write_config(tmp_path / "ref", name="resume", **over)
    steps.run_campaign(str(ref_path))
    path = write_config(tmp_path / "killed", name="resume", **over)
    killed = 0
    for fault in KILLS:
        proc = run_cli(path, fault)
        if proc.returncode == 0:
            continue  # that point was already behind us
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        killed += 1
    assert killed >= 5
    proc = run_cli(path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "report:" in proc.stdout
    assert export_texts(path) == export_texts(ref_path)
    c, ref = open_campaign(str(path)), open_campaign(str(ref_path))
    for k in (1, 2):
        pairs = final_pairs(c.layout, k, ["u00000", "u00001"])
        ids = Counter(p.pair_id for p in pairs)
        assert ids and max(ids.values()) == 1, "a pair was duplicated"
        planned = {r["pair_id"] for u in ("u00000", "u00001") for r in c.layout.read_stage(k, "plan", u)}
        assert set(ids) == planned, "a planned pair was lost"
        assert c.desk.counts(k) == ref.desk.counts(k), "human tasks were duplicated or lost"
        assert c.desk.results(k) == ref.desk.results(k)
