"""A local stand-in for EcoSign's Edge Functions and REST endpoint, over real HTTP.

It imports nothing of the orchestrator: it is an external system, seen only through HTTP.
"""

from __future__ import annotations

from ecosign_orchestrator.sandbox.app import create_app
from ecosign_orchestrator.sandbox.faults import Fault, FaultPlan
from ecosign_orchestrator.sandbox.functions import AnchorTiming
from ecosign_orchestrator.sandbox.server import SandboxServer, free_port, serve
from ecosign_orchestrator.sandbox.store import Store

__all__ = [
    "AnchorTiming",
    "Fault",
    "FaultPlan",
    "SandboxServer",
    "Store",
    "create_app",
    "free_port",
    "serve",
]
