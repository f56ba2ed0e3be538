"""SAM 3 through Hugging Face transformers: presets, predictor, training, registry and PCS metrics."""
