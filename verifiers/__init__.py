"""AI verifiers for mask verification (MV) and exhaustivity verification (EV).

MV judges one mask of an (image, phrase) pair, EV whether a pair's accepted masks are exhaustive,
each with the SAM 3 paper's categorical labels (`labels`) and probabilities (`base.Verdict`, with the
verifier's version id; EV without masks also gives the presence score 1 - P(accept)).

- `base`: requests, verdicts, the `Verifier` protocol
- `decisions`, `examples`: human decision logs (Parquet) -> labelled MV / EV examples
- `context`, `features`, `embedding`: what the learned backend sees (predictor outputs, phrase)
- `learned`, `training`, `store`: the learned backend, its training, saving and versioning
- `render`, `prompts`, `mllm_scorers`, `mllm`: the MLLM backend (vLLM / OpenAI-compatible or local)
- `calibration`, `reliability`, `evaluation`, `filtering`: thresholds at a target precision,
  reliability PNGs, accuracy vs human raters, filtering model output by the verifiers
Routing (what to auto-accept, what goes to humans) is policy and lives in `engine/`.
"""

from verifiers.base import EVRequest, MVRequest, Verdict, Verifier, presence_requests
from verifiers.labels import EV_LABELS, LABELS, MV_LABELS

__all__ = [
    "EV_LABELS",
    "LABELS",
    "MV_LABELS",
    "EVRequest",
    "MVRequest",
    "Verdict",
    "Verifier",
    "presence_requests",
]
