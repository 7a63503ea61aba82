"""``python -m ecosign_orchestrator``."""

from __future__ import annotations

from ecosign_orchestrator.service.cli import main

main()
