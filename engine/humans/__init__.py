"""Human backends: the task/result interface, simulated annotators and their time model.

- `base`: `HumanTask`, `HumanResult`, `HumanBackend` protocol, MV/EV label sets
- `simulated`: `SimulatedAnnotators` (judges against exact ground truth, with configurable errors)
- `timing`: `TimeModel` (seconds per task, calibrated on the SAM 3 paper's figures)
- `label_studio`: `LabelStudioBackend` (MV / EV / correction projects in a Label Studio server), with
  `ls_client` (settings, retries), `ls_configs`, `ls_tasks`, `ls_masks` (brush RLE), `ls_webhook`
"""
