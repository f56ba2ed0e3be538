"""Concept graphs, noun-phrase normalisation and proposal, hard-negative mining."""
