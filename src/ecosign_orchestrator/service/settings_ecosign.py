"""Settings, the EcoSign section: where EcoSign is, and how its steps are called, limited,
retried and waited for (``Settings`` inherits it)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationInfo, field_validator

from ecosign_orchestrator.core import errors

#: The largest time scale (scales exist to run delays small; 1000x is already absurd).
MAX_SCALE = 1000.0


def check_caps(value: dict[str, int]) -> dict[str, int]:
    """Every "at most N at once" cap is at least 1."""
    for kind, cap in value.items():
        if cap < 1:
            raise ValueError(f"{kind}: at most N at once needs N >= 1, not {cap}")
    return value


class EcosignSettings(BaseModel):
    """Where EcoSign's Edge Functions and REST endpoint are, and how the flow treats them."""

    edge_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "ECOSIGN_ORCH_EDGE_BASE_URL", "EDGE_BASE_URL", "edge_base_url"
        ),
        description="Base URL of the Edge Functions (POST {edge_base_url}/functions/v1/{name})",
    )
    supabase_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ECOSIGN_ORCH_SUPABASE_URL", "SUPABASE_URL", "supabase_url"),
        description="Base URL of the REST API (GET {supabase_url}/rest/v1/document_entities)",
    )
    service_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "ECOSIGN_ORCH_SERVICE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "service_key"
        ),
        description="Service-role key sent as bearer token and apikey",
    )
    edge_timeout_scale: float = Field(
        default=1.0, gt=0, le=MAX_SCALE, description="multiplies every step's call timeout"
    )
    confirmation_scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SCALE,
        description="multiplies anchor confirmation schedules and deadlines (small in the sandbox)",
    )
    backoff_scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SCALE,
        description="multiplies every step's backoff base and cap",
    )
    confirmations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per network: schedule_seconds (delays between polls; the last repeats) and "
        "deadline_seconds, e.g. {bitcoin = {schedule_seconds = [900, 1800], "
        "deadline_seconds = 259200}}; confirmation_scale multiplies them",
    )
    step_headers: dict[str, dict[str, SecretStr]] = Field(
        default_factory=dict,
        description="extra request headers per step, values secret (masked, never logged), e.g. "
        "{notify_artifact_ready = {x-cron-secret = '...'}}",
    )
    step_body: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="extra request body fields per step"
    )
    state_gates: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="steps done outside the orchestrator: call nothing, wait for the document's "
        "state, e.g. {create_witness = {schedule_seconds = [10, 30, 60], "
        "deadline_seconds = 3600}}",
    )
    step_functions: dict[str, str] = Field(
        default_factory=dict, description="Edge Function per step, e.g. {create_witness = 'x'}"
    )
    step_policies: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="per-step overrides: {append_tsa = {max_attempts = 10, base_seconds = 5}}",
    )
    edge_max_connections: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="HTTP connections to EcoSign (Edge Functions and REST reads) open at once "
        "per worker process; a request past it waits for a free one, and that wait is not part "
        "of the call's timeout. Size it as requests per second times their latency: 256 carries "
        "about 1,000 requests/s of 250 ms, more than one process's CPU sends",
    )
    call_log_body_bytes: int = Field(
        default=8192,
        ge=0,
        le=1024 * 1024,
        description="how much of each Edge Function answer the call log keeps",
    )
    call_log_request_bodies: bool = Field(
        default=False,
        description="debug: keep whole request bodies in the call log (secrets redacted); "
        "by default only their field names and sizes",
    )
    function_limits: dict[str, int] = Field(
        default_factory=dict,
        description="at most N calls in flight per Edge Function, across every worker, e.g. "
        '{"submit-anchor-polygon": 1}; a flow finding none free waits without spending attempts',
    )
    function_rates: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="at most `per` calls in any `seconds` per Edge Function, across every "
        'worker, e.g. {"run-tsa": {"per": 10, "seconds": 1}}; a flow over the rate waits',
    )
    circuit_failures: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="consecutive transient failures of an Edge Function (fleet-wide) that open "
        "its circuit: calls are held, flows wait without spending attempts (0: no breaker)",
    )
    circuit_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="how long an open circuit holds calls before one probe tries again "
        "(scaled by BACKOFF_SCALE); a Retry-After answer opens it for that long instead",
    )
    circuit_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="how long a worker trusts a closed circuit it read (one read per function "
        "and worker this often instead of one per call); failures elsewhere in the fleet are "
        "seen this late at most (0: read before every call)",
    )
    reconcile_every_seconds: float | None = Field(
        default=None,
        gt=0,
        description="opt-in: scan EcoSign this often for documents whose protection was "
        "requested and that have no flow, and give each one (the ecosign.reconcile schedule)",
    )
    lifecycle_write_back: bool = Field(
        default=False, description="PATCH document_entities.lifecycle_status when a flow ends"
    )

    @field_validator("edge_timeout_scale", "confirmation_scale", "backoff_scale", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        """Scales may be written as fractions: ``1/300`` reads better than ``0.00333``."""
        if isinstance(value, str) and "/" in value:
            try:
                return float(Fraction(value.replace(" ", "")))
            except (ValueError, ZeroDivisionError):
                raise ValueError("must be a number or a fraction such as 1/300") from None
        return value

    @field_validator("function_limits")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        return check_caps(value)

    @field_validator("function_rates")
    @classmethod
    def _rates(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for function, rate in value.items():
            if set(rate) != {"per", "seconds"}:
                raise ValueError(f"{function}: give exactly per and seconds")
            if rate["per"] < 1 or rate["per"] != int(rate["per"]) or not rate["seconds"] > 0:
                raise ValueError(f"{function}: per must be a whole number >= 1, seconds > 0")
        return value

    @field_validator(
        "step_functions",
        "step_policies",
        "confirmations",
        "step_headers",
        "step_body",
        "state_gates",
        mode="after",
    )
    @classmethod
    def _known_steps(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if not value:
            return value  # nothing to check: the EcoSign module is not even imported
        from ecosign_orchestrator import ecosign

        keyword = {
            "step_functions": "functions",
            "step_policies": "policies",
            "confirmations": "confirmations",
            "step_headers": "headers",
            "step_body": "body_fields",
            "state_gates": "gates",
        }[str(info.field_name)]
        if keyword == "headers":
            value_check: Any = {
                step: {h: v.get_secret_value() for h, v in headers.items()}
                for step, headers in value.items()
            }
        else:
            value_check = value
        try:
            ecosign.EcosignConfig().with_overrides(**{keyword: value_check})
        except errors.ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def ecosign_missing(self) -> list[str]:
        """Settings the EcoSign processor needs that are not set."""
        missing = []
        if not self.edge_base_url:
            missing.append("EDGE_BASE_URL")
        if not self.supabase_url:
            missing.append("SUPABASE_URL")
        if self.service_key is None or not self.service_key.get_secret_value():
            missing.append("ECOSIGN_ORCH_SERVICE_KEY")
        return missing

    def _effective_confirmations(self) -> dict[str, Any]:
        """Each network's schedule as the worker will use it (overrides and scale applied)."""
        from ecosign_orchestrator import ecosign

        config = ecosign.EcosignConfig().with_overrides(confirmations=self.confirmations)
        scaled = config.scaled(backoff=1, timeout=1, confirmation=self.confirmation_scale)
        return scaled.confirmation_schedules()
