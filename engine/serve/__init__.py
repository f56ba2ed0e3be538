"""Servers the engine runs for others: the SAM 3 ML backend for Label Studio (`label_studio_ml`)."""
