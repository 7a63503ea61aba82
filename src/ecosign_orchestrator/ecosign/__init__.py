"""The EcoSign document processor: plans steps from intent + document state, calls Edge Functions.

It only coordinates: it runs no binaries and holds none of the steps' business logic.
"""

from __future__ import annotations

from ecosign_orchestrator.ecosign.edge import EdgeClient
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.planner import Plan, plan, required_steps
from ecosign_orchestrator.ecosign.processor import (
    KIND,
    DocumentProcessor,
    EcosignConfig,
    validate_payload,
)
from ecosign_orchestrator.ecosign.state import DocumentState
from ecosign_orchestrator.ecosign.state_source import DocumentStateSource, RestStateSource
from ecosign_orchestrator.ecosign.steps import Step

__all__ = [
    "KIND",
    "DocumentJob",
    "DocumentProcessor",
    "DocumentState",
    "DocumentStateSource",
    "EcosignConfig",
    "EdgeClient",
    "Plan",
    "RestStateSource",
    "Step",
    "plan",
    "required_steps",
    "validate_payload",
]
