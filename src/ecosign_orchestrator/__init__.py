"""ecosign-orchestrator: the single authority that drives EcoSign document flows."""
