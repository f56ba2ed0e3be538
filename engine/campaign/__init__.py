"""The engine: campaigns of the data loop (DESIGN.md) run phase by phase, step by step.

`engine.campaign.steps` is the public API (start, plan, propose, annotate, await_humans, consolidate,
retrain, evaluate, promote, report, run_campaign); `config.load_config` reads a campaign YAML.
Modules: config (pydantic), layout (data at rest, markers), sources (media -> work units), stages
(plain per-unit functions), routing (policy), humans (task queue <-> human backend), verifier_ops
(phase verifiers), models (registry, gold), executors (inline / Ray Data), exports (shards, SA-Co),
accounting (time, calls, cost), report (report.json + index.html).
"""
