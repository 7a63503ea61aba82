"""What a deployment configures about the document flow: each step's Edge Function and retry
policy, the anchors' confirmation schedules, lifecycle write-back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.gates import CircuitPolicy
from ecosign_orchestrator.ecosign.steps import (
    DEFAULT_CONFIRMATIONS,
    DEFAULT_FUNCTIONS,
    DEFAULT_POLICIES,
    ConfirmationPolicy,
    Step,
    StepPolicy,
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EcosignConfig:
    """Functions, per-step retry policies and confirmation schedules."""

    functions: dict[Step, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_FUNCTIONS))
    policies: dict[Step, StepPolicy] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_POLICIES)
    )
    confirmations: dict[Step, ConfirmationPolicy] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_CONFIRMATIONS)
    )
    #: Extra request headers per step (secret values, e.g. notify's ``x-cron-secret``).
    headers: dict[Step, dict[str, str]] = dataclasses.field(default_factory=dict)
    #: Extra request body fields per step (the orchestrator's own fields cannot be replaced).
    body_fields: dict[Step, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: Steps done outside the orchestrator (EcoSign builds the witness client-side): the flow
    #: calls nothing and waits, on this schedule, for the document's state to show them done.
    gates: dict[Step, ConfirmationPolicy] = dataclasses.field(default_factory=dict)
    lifecycle_write_back: bool = False
    #: Calls one run may make before it yields (a guard against a function that lies).
    max_calls_per_run: int = 16
    #: At most this many calls in flight per Edge Function, fleet-wide (e.g. one Polygon
    #: sponsor wallet: ``{"submit-anchor-polygon": 1}``).
    function_limits: dict[str, int] = dataclasses.field(default_factory=dict)
    #: At most ``per`` calls in any ``seconds`` per Edge Function, fleet-wide (Supabase's and
    #: the TSA's rate limits): ``{"run-tsa": (10, 1.0)}``.
    function_rates: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)
    #: Each Edge Function's circuit breaker, fleet-wide (``failures=0``: none).
    circuit: CircuitPolicy = dataclasses.field(default_factory=CircuitPolicy)
    #: How long a flow waiting for a slot sleeps before it looks again.
    slot_wait_seconds: float = 0.5

    def scaled(self, *, backoff: float, timeout: float, confirmation: float) -> EcosignConfig:
        """All delays multiplied (the sandbox and the demo run them small)."""
        return dataclasses.replace(
            self,
            policies={
                s: p.scaled(backoff=backoff, timeout=timeout) for s, p in self.policies.items()
            },
            confirmations={s: c.scaled(confirmation) for s, c in self.confirmations.items()},
            gates={s: g.scaled(confirmation) for s, g in self.gates.items()},
            circuit=dataclasses.replace(
                self.circuit, cooldown_seconds=self.circuit.cooldown_seconds * backoff
            ),
        )

    def with_overrides(
        self,
        *,
        functions: Mapping[str, str] | None = None,
        policies: Mapping[str, Mapping[str, Any]] | None = None,
        confirmations: Mapping[str, Mapping[str, Any]] | None = None,
        headers: Mapping[str, Mapping[str, str]] | None = None,
        body_fields: Mapping[str, Mapping[str, Any]] | None = None,
        gates: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> EcosignConfig:
        """This configuration with per-step functions and policy fields, and per-network
        confirmation schedules, replaced (unknown names or fields and invalid values are a
        ``ConfigurationError`` naming them)."""
        new_confirmations = dict(self.confirmations)
        for network, override in (confirmations or {}).items():
            step = _anchor_step(network)
            new_confirmations[step] = _confirmation(network, new_confirmations[step], override)
        new_functions = dict(self.functions)
        new_policies = dict(self.policies)
        for name, function in (functions or {}).items():
            new_functions[_step(name)] = function
        known = {field.name for field in dataclasses.fields(StepPolicy)}
        for name, override in (policies or {}).items():
            step = _step(name)
            unknown = sorted(set(override) - known)
            if unknown:
                raise errors.ConfigurationError(f"step_policies.{name}: unknown fields {unknown}")
            current = new_policies[step]
            try:
                policy = StepPolicy(
                    max_attempts=int(override.get("max_attempts", current.max_attempts)),
                    base_seconds=float(override.get("base_seconds", current.base_seconds)),
                    cap_seconds=float(override.get("cap_seconds", current.cap_seconds)),
                    timeout_seconds=float(override.get("timeout_seconds", current.timeout_seconds)),
                )
            except (TypeError, ValueError) as exc:
                raise errors.ConfigurationError(f"step_policies.{name}: {exc}") from None
            if policy.max_attempts < 1 or policy.timeout_seconds <= 0:
                raise errors.ConfigurationError(f"step_policies.{name}: invalid policy {policy}")
            new_policies[step] = policy
        return dataclasses.replace(
            self,
            functions=new_functions,
            policies=new_policies,
            confirmations=new_confirmations,
            headers={**self.headers, **_per_step_headers(headers or {})},
            body_fields={**self.body_fields, **_per_step_body(body_fields or {})},
            gates={**self.gates, **_per_step_gates(gates or {})},
        )

    def confirmation_schedules(self) -> dict[str, dict[str, Any]]:
        """The effective schedule of each network, for ``config show``."""
        return {
            step.network or step.value: {
                "schedule_seconds": list(policy.schedule_seconds),
                "deadline_seconds": policy.deadline_seconds,
            }
            for step, policy in self.confirmations.items()
        }

    def job_max_attempts(self) -> int:
        """Enough job-level attempts for every step to use all of its own."""
        return sum(p.max_attempts for p in self.policies.values()) + 5


def _step(name: str) -> Step:
    try:
        return Step(name)
    except ValueError:
        known = ", ".join(step.value for step in Step)
        raise errors.ConfigurationError(f"unknown step {name!r}; steps are {known}") from None


def _label(name: str) -> str:
    return name if "." in name else f"confirmations.{name}"


def _anchor_step(network: str) -> Step:
    for step in Step:
        if step.network == network:
            return step
    known = ", ".join(step.network for step in Step if step.network)
    raise errors.ConfigurationError(f"unknown network {network!r}; networks are {known}")


def _confirmation(
    network: str, current: ConfirmationPolicy, override: Mapping[str, Any]
) -> ConfirmationPolicy:
    """``current`` with ``schedule_seconds`` and/or ``deadline_seconds`` replaced."""
    unknown = sorted(set(override) - {"schedule_seconds", "deadline_seconds"})
    if unknown:
        raise errors.ConfigurationError(f"{_label(network)}: unknown fields {unknown}")
    try:
        schedule = tuple(
            float(s) for s in override.get("schedule_seconds", current.schedule_seconds)
        )
        deadline = float(override.get("deadline_seconds", current.deadline_seconds))
    except (TypeError, ValueError) as exc:
        raise errors.ConfigurationError(f"{_label(network)}: {exc}") from None
    if not schedule or any(s <= 0 for s in schedule) or deadline <= 0:
        raise errors.ConfigurationError(
            f"{_label(network)}: the schedule needs positive delays and a positive deadline"
        )
    return ConfirmationPolicy(schedule_seconds=schedule, deadline_seconds=deadline)


#: Headers the orchestrator sets itself on every call.
RESERVED_HEADERS = frozenset({"authorization", "apikey", "idempotency-key", "content-type"})
#: Body fields the orchestrator sets itself: the flow's identity (which document, which witness
#: version, which signature stage) and what EcoSign's unique keys are made of. Configuration
#: may add fields, never replace these.
RESERVED_FIELDS = frozenset(
    {"document_entity_id", "correlation_id", "witness_hash", "anchor_stage", "step_index"}
)
_GATE_DEFAULT = ConfirmationPolicy(schedule_seconds=(10.0, 30.0, 60.0), deadline_seconds=3600.0)


def _per_step_headers(headers: Mapping[str, Mapping[str, str]]) -> dict[Step, dict[str, str]]:
    out: dict[Step, dict[str, str]] = {}
    for name, values in headers.items():
        reserved = sorted(h for h in values if h.lower() in RESERVED_HEADERS)
        if reserved:
            raise errors.ConfigurationError(
                f"step_headers.{name}: {reserved} are set by the orchestrator itself"
            )
        out[_step(name)] = {str(k): str(v) for k, v in values.items()}
    return out


def _per_step_body(body: Mapping[str, Mapping[str, Any]]) -> dict[Step, dict[str, Any]]:
    out: dict[Step, dict[str, Any]] = {}
    for name, fields in body.items():
        reserved = sorted(set(fields) & RESERVED_FIELDS)
        if reserved:
            raise errors.ConfigurationError(
                f"step_body.{name}.{reserved[0]}: set by the orchestrator itself (part of a "
                "flow's identity); configuration cannot replace it"
            )
        out[_step(name)] = dict(fields)
    return out


def _per_step_gates(gates: Mapping[str, Mapping[str, Any]]) -> dict[Step, ConfirmationPolicy]:
    out: dict[Step, ConfirmationPolicy] = {}
    for name, override in gates.items():
        step = _step(name)
        if step.network is not None or step.spec.satisfied_by is None:
            raise errors.ConfigurationError(
                f"state_gates.{name}: only a step the document's state can show done may be a "
                "gate (not an anchor, not notify)"
            )
        out[step] = _confirmation(f"state_gates.{name}", _GATE_DEFAULT, override)
    return out
