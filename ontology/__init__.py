"""Concept graphs, noun-phrase normalisation and proposal, hard-negative mining.

Modules (one job each):
- `graph`: the `ConceptGraph` (nodes, synonyms, parents, domains; ancestors, descendants, siblings)
  and its YAML format; `relations`: cousins, uncles, hard-negative relatives, domain subgraphs, stats;
- `loaders`: `load_source("shapes" | "common_objects" | FILE.yaml | "wordnet[:DIR]" |
  "wikidata:FILE.jsonl")`, with `loaders.wordnet` and `loaders.wikidata` (streamed JSON lines);
- `normalise`: canonical phrases or rejections with reasons; `embedding` + `dedup`: MiniLM sentence
  embeddings and near-duplicate removal; `parse`: a phrase's head and modifier nodes;
- `mapping`: phrase -> node (exact, head noun, embedding top-k, optional `llm.LLMJudge`);
  `coverage`: positives/negatives per node and starved nodes;
- `proposers`: one interface, chosen by config `kind` (ontology sampler, model-in-the-loop,
  OpenAI-compatible LLM/MLLM, local transformers LM); `proposals_table`: their Parquet output;
- `hard_negatives`: ontology/LLM candidates, filtered for possible presence, adversarially checked
  with the current model through `predictions` (a protocol over `model.predictor.Predictor`).
"""
