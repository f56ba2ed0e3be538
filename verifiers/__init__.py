"""AI verifiers for mask verification (MV) and exhaustivity verification (EV)."""
