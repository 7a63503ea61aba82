"""The EcoSign document processor: plans steps from intent + document state, calls Edge Functions.

It only coordinates: it runs no binaries and holds none of the steps' business logic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ecosign_orchestrator.ecosign.transport import HttpClient

#: Where each public name lives: imported on first use, so a command that only needs the step
#: names or an intent's label does not load the HTTP client and the processor (~150 ms).
_LAZY = {
    "Admission": "ecosign_orchestrator.ecosign.admission",
    "EcosignConfig": "ecosign_orchestrator.ecosign.config",
    "EdgeClient": "ecosign_orchestrator.ecosign.edge",
    "HttpClient": "ecosign_orchestrator.ecosign.transport",
    "FlowLifecycle": "ecosign_orchestrator.ecosign.lifecycle",
    "flow_lifecycle": "ecosign_orchestrator.ecosign.lifecycle",
    "DocumentJob": "ecosign_orchestrator.ecosign.model",
    "Plan": "ecosign_orchestrator.ecosign.planner",
    "plan": "ecosign_orchestrator.ecosign.planner",
    "required_steps": "ecosign_orchestrator.ecosign.planner",
    "Preview": "ecosign_orchestrator.ecosign.preview",
    "Previewer": "ecosign_orchestrator.ecosign.preview",
    "DocumentProcessor": "ecosign_orchestrator.ecosign.processor",
    "validate_payload": "ecosign_orchestrator.ecosign.processor",
    "RECONCILE_KIND": "ecosign_orchestrator.ecosign.reconcile",
    "intent_from_request": "ecosign_orchestrator.ecosign.reconcile",
    "reconcile": "ecosign_orchestrator.ecosign.reconcile",
    "reconcile_processor": "ecosign_orchestrator.ecosign.reconcile",
    "DocumentState": "ecosign_orchestrator.ecosign.state",
    "DocumentStateSource": "ecosign_orchestrator.ecosign.state_source",
    "RestStateSource": "ecosign_orchestrator.ecosign.state_source",
    "STEPS": "ecosign_orchestrator.ecosign.steps",
    "Step": "ecosign_orchestrator.ecosign.steps",
    "StepPolicy": "ecosign_orchestrator.ecosign.steps",
    "StepSpec": "ecosign_orchestrator.ecosign.steps",
    "KIND": "ecosign_orchestrator.ecosign.submission",
    "document_prefix": "ecosign_orchestrator.ecosign.submission",
    "flow_request": "ecosign_orchestrator.ecosign.submission",
    "intent_label": "ecosign_orchestrator.ecosign.submission",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "HttpClient",
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
