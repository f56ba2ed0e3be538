"""sam3-engine's engine: campaigns, phases, routing, human backends, the shapes world and the CLI."""
