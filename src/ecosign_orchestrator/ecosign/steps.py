"""The step table: every EcoSign step in one place, read by the planner, the processor, the CLI's
live view and the API.

Each row says what the step is called, which Edge Function executes it, how it is labelled, its
retry policy and call timeout, when an intent requires it, how the document's state shows it is
done, what the orchestrator puts in its request body and, for anchors, how its confirmation is
polled. Adding a step means: a ``Step`` member and a row here, its state check in ``state.py``,
and its function in the sandbox.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

from ecosign_orchestrator.ecosign import inputs
from ecosign_orchestrator.ecosign import state as st
from ecosign_orchestrator.ecosign.inputs import InputRule
from ecosign_orchestrator.ecosign.model import DocumentJob


class Step(enum.StrEnum):
    """The seven canonical steps, in the order they run."""

    ENCRYPT_SOURCE = "encrypt_source"
    CREATE_WITNESS = "create_witness"
    APPEND_TSA = "append_tsa"
    ANCHOR_POLYGON = "anchor_polygon"
    ANCHOR_BITCOIN = "anchor_bitcoin"
    BUILD_ARTIFACT = "build_artifact"
    NOTIFY_ARTIFACT_READY = "notify_artifact_ready"

    @property
    def spec(self) -> StepSpec:
        """This step's row of the table."""
        return SPECS[self]

    @property
    def network(self) -> str | None:
        """``polygon``/``bitcoin`` for anchor steps."""
        return SPECS[self].network


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StepPolicy:
    """Retry limits and call timeout of one step."""

    max_attempts: int
    base_seconds: float
    cap_seconds: float
    timeout_seconds: float

    def scaled(self, *, backoff: float = 1.0, timeout: float = 1.0) -> StepPolicy:
        """This policy with backoff and timeout multiplied (the sandbox runs them small)."""
        return dataclasses.replace(
            self,
            base_seconds=self.base_seconds * backoff,
            cap_seconds=self.cap_seconds * backoff,
            timeout_seconds=self.timeout_seconds * timeout,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmationPolicy:
    """How often to poll for an anchor's confirmation, and for how long at most."""

    #: Delays between polls in seconds; the last one repeats.
    schedule_seconds: tuple[float, ...]
    deadline_seconds: float

    def delay(self, polls: int) -> float:
        """Seconds to wait before poll number ``polls + 1``."""
        return self.schedule_seconds[min(polls, len(self.schedule_seconds) - 1)]

    def scaled(self, factor: float) -> ConfirmationPolicy:
        """Schedule and deadline multiplied by ``factor``."""
        return ConfirmationPolicy(
            schedule_seconds=tuple(s * factor for s in self.schedule_seconds),
            deadline_seconds=self.deadline_seconds * factor,
        )


MINUTE = 60.0
HOUR = 3600.0

#: Why an intent needs a step (None: it does not).
RequiredWhen = Callable[[DocumentJob], str | None]
#: Whether the document's state shows the step done, given the current witness hash.
SatisfiedBy = Callable[[st.DocumentState, str | None], bool]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    """One row of the step table."""

    step: Step
    #: The Edge Function that executes it (overridable in configuration).
    function: str
    #: Column header in the live view, and its narrow-terminal form.
    label: str
    short_label: str
    policy: StepPolicy
    required_when: RequiredWhen
    #: None: only the flow's own record of a successful call satisfies it (notify).
    satisfied_by: SatisfiedBy | None
    #: What the document's state shows once the step is done, in words ("witness present"):
    #: the message of a step that was waited on (a confirmation, a state gate) and is now done.
    done_in_state: str = "done (seen in the document's state)"
    #: Constant fields of the request body, besides ``document_entity_id``.
    body: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: The call signs the current witness: send its hash as ``witness_hash``.
    signs_witness: bool = False
    #: Body fields a CTA may supply through ``metadata.step_inputs.<step>``, each with what it
    #: may be (never what the step acts on: that comes from the document's state).
    caller_inputs: Mapping[str, InputRule] = dataclasses.field(default_factory=dict)
    #: Anchor steps: the network, and how its asynchronous confirmation is polled.
    network: str | None = None
    confirmation: ConfirmationPolicy | None = None


def _actions(intent: DocumentJob) -> str:
    return ", ".join(intent.actions.enabled())


def _encrypt_required(intent: DocumentJob) -> str | None:
    if intent.custody_mode == "hash_only":
        return None
    return f"required by {_actions(intent)} (encrypted custody)"


WITNESS_REASON = "required: the artifact embeds the witness; TSA and anchors sign it"


def _tsa_required(intent: DocumentJob) -> str | None:
    if intent.forensic.tsa:
        return "requested: forensic.tsa"
    if intent.forensic.polygon or intent.forensic.bitcoin:
        return "implied: anchors require a confirmed TSA"
    return None


def _artifact_required(intent: DocumentJob) -> str | None:
    """The artifact (and its notification) is built once per document, at the final stage."""
    if not intent.builds_artifact:
        return None
    return f"required by {_actions(intent)}"


def _anchor_spec(step: Step, network: str, **fields: Any) -> StepSpec:
    def required(intent: DocumentJob) -> str | None:
        return f"requested: forensic.{network}" if getattr(intent.forensic, network) else None

    def satisfied(state: st.DocumentState, witness: str | None) -> bool:
        return st.anchor_confirmed(state, network, witness)

    return StepSpec(
        step=step,
        required_when=required,
        satisfied_by=satisfied,
        done_in_state=f"confirmed on {network}",
        signs_witness=True,
        network=network,
        **fields,
    )


#: The table, in the order the steps run (design §3-4 defaults).
STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        step=Step.ENCRYPT_SOURCE,
        function="store-encrypted-custody",
        label="encrypt",
        short_label="enc",
        policy=StepPolicy(max_attempts=5, base_seconds=2, cap_seconds=60, timeout_seconds=30),
        required_when=_encrypt_required,
        satisfied_by=lambda state, _witness: st.source_encrypted(state),
        done_in_state="encrypted source in custody",
        body={"purpose": "source"},
        # The client-side ciphertext and its file facts (the server never sees the key).
        caller_inputs={"encrypted_data": inputs.ENCRYPTED_DATA, "metadata": inputs.FILE_FACTS},
    ),
    StepSpec(
        step=Step.CREATE_WITNESS,
        function="create-witness",
        label="witness",
        short_label="wit",
        policy=StepPolicy(max_attempts=5, base_seconds=2, cap_seconds=60, timeout_seconds=30),
        required_when=lambda _: WITNESS_REASON,
        satisfied_by=lambda state, _witness: st.witness_ready(state),
        done_in_state="witness present",
    ),
    StepSpec(
        step=Step.APPEND_TSA,
        function="run-tsa",
        label="tsa",
        short_label="tsa",
        policy=StepPolicy(max_attempts=8, base_seconds=5, cap_seconds=600, timeout_seconds=30),
        required_when=_tsa_required,
        satisfied_by=st.tsa_confirmed,
        done_in_state="TSA confirmed for the witness",
        signs_witness=True,
        caller_inputs={"signer_id": inputs.UUID, "workflow_id": inputs.UUID},
    ),
    _anchor_spec(
        Step.ANCHOR_POLYGON,
        "polygon",
        function="submit-anchor-polygon",
        label="polygon",
        short_label="poly",
        policy=StepPolicy(max_attempts=8, base_seconds=10, cap_seconds=900, timeout_seconds=60),
        # Polygon: 5, 10, 20, 30, 60 min, deadline 1 h.
        confirmation=ConfirmationPolicy(
            schedule_seconds=tuple(m * MINUTE for m in (5, 10, 20, 30, 60)),
            deadline_seconds=1 * HOUR,
        ),
    ),
    _anchor_spec(
        Step.ANCHOR_BITCOIN,
        "bitcoin",
        function="submit-anchor-bitcoin",
        label="bitcoin",
        short_label="btc",
        policy=StepPolicy(max_attempts=8, base_seconds=30, cap_seconds=1800, timeout_seconds=60),
        # Bitcoin (OpenTimestamps): 15, 30, 60, 120, 240, 360 min, deadline 72 h.
        confirmation=ConfirmationPolicy(
            schedule_seconds=tuple(m * MINUTE for m in (15, 30, 60, 120, 240, 360)),
            deadline_seconds=72 * HOUR,
        ),
    ),
    StepSpec(
        step=Step.BUILD_ARTIFACT,
        function="build-artifact",
        label="artifact",
        short_label="art",
        policy=StepPolicy(max_attempts=5, base_seconds=5, cap_seconds=300, timeout_seconds=120),
        required_when=_artifact_required,
        satisfied_by=lambda state, _witness: st.artifact_finalized(state),
        done_in_state="artifact finalized",
        caller_inputs={"artifact_version": inputs.ARTIFACT_VERSION},
    ),
    StepSpec(
        step=Step.NOTIFY_ARTIFACT_READY,
        function="notify-artifact-ready",
        label="notify",
        short_label="ntf",
        policy=StepPolicy(max_attempts=10, base_seconds=5, cap_seconds=1800, timeout_seconds=15),
        required_when=_artifact_required,
        satisfied_by=None,
    ),
)

SPECS: dict[Step, StepSpec] = {spec.step: spec for spec in STEPS}
CANONICAL_ORDER: tuple[Step, ...] = tuple(spec.step for spec in STEPS)
ANCHOR_STEPS: tuple[Step, ...] = tuple(spec.step for spec in STEPS if spec.network is not None)
DEFAULT_FUNCTIONS: dict[Step, str] = {spec.step: spec.function for spec in STEPS}
DEFAULT_POLICIES: dict[Step, StepPolicy] = {spec.step: spec.policy for spec in STEPS}
DEFAULT_CONFIRMATIONS: dict[Step, ConfirmationPolicy] = {
    spec.step: spec.confirmation for spec in STEPS if spec.confirmation is not None
}
assert set(SPECS) == set(Step), "every Step has exactly one row in STEPS"
