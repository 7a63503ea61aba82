"""The EcoSign document processor: plans steps from intent + document state, calls Edge Functions.

It only coordinates: it runs no binaries and holds none of the steps' business logic.
"""

from __future__ import annotations

from ecosign_orchestrator.ecosign.admission import Admission
from ecosign_orchestrator.ecosign.config import EcosignConfig
from ecosign_orchestrator.ecosign.edge import EdgeClient
from ecosign_orchestrator.ecosign.lifecycle import FlowLifecycle, flow_lifecycle
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.planner import Plan, plan, required_steps
from ecosign_orchestrator.ecosign.preview import Preview, Previewer
from ecosign_orchestrator.ecosign.processor import DocumentProcessor, validate_payload
from ecosign_orchestrator.ecosign.reconcile import (
    RECONCILE_KIND,
    intent_from_request,
    reconcile,
    reconcile_processor,
)
from ecosign_orchestrator.ecosign.state import DocumentState
from ecosign_orchestrator.ecosign.state_source import DocumentStateSource, RestStateSource
from ecosign_orchestrator.ecosign.steps import STEPS, Step, StepPolicy, StepSpec
from ecosign_orchestrator.ecosign.submission import (
    KIND,
    document_prefix,
    flow_request,
    intent_label,
)

__all__ = [
    "KIND",
    "RECONCILE_KIND",
    "STEPS",
    "Admission",
    "DocumentJob",
    "DocumentProcessor",
    "DocumentState",
    "DocumentStateSource",
    "EcosignConfig",
    "EdgeClient",
    "FlowLifecycle",
    "Plan",
    "Preview",
    "Previewer",
    "RestStateSource",
    "Step",
    "StepPolicy",
    "StepSpec",
    "document_prefix",
    "flow_lifecycle",
    "flow_request",
    "intent_from_request",
    "intent_label",
    "plan",
    "reconcile",
    "reconcile_processor",
    "required_steps",
    "validate_payload",
]
