"""The HTTP API: FastAPI app, auth, schemas and routes."""

from __future__ import annotations

from ecosign_orchestrator.service.api.app import create_app

__all__ = ["create_app"]
