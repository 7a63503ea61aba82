"""The canonical steps, their Edge Functions, retry and confirmation policies (design §3-4)."""

from __future__ import annotations

import dataclasses
import enum


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
    def network(self) -> str | None:
        """``polygon``/``bitcoin`` for anchor steps."""
        return {Step.ANCHOR_POLYGON: "polygon", Step.ANCHOR_BITCOIN: "bitcoin"}.get(self)


CANONICAL_ORDER: tuple[Step, ...] = tuple(Step)
ANCHOR_STEPS = (Step.ANCHOR_POLYGON, Step.ANCHOR_BITCOIN)

#: Default Edge Function per step (overridable in configuration).
DEFAULT_FUNCTIONS: dict[Step, str] = {
    Step.ENCRYPT_SOURCE: "store-encrypted-custody",
    Step.CREATE_WITNESS: "create-witness",
    Step.APPEND_TSA: "run-tsa",
    Step.ANCHOR_POLYGON: "submit-anchor-polygon",
    Step.ANCHOR_BITCOIN: "submit-anchor-bitcoin",
    Step.BUILD_ARTIFACT: "build-artifact",
    Step.NOTIFY_ARTIFACT_READY: "notify-artifact-ready",
}


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


#: Design §3 defaults.
DEFAULT_POLICIES: dict[Step, StepPolicy] = {
    Step.ENCRYPT_SOURCE: StepPolicy(
        max_attempts=5, base_seconds=2, cap_seconds=60, timeout_seconds=30
    ),
    Step.CREATE_WITNESS: StepPolicy(
        max_attempts=5, base_seconds=2, cap_seconds=60, timeout_seconds=30
    ),
    Step.APPEND_TSA: StepPolicy(
        max_attempts=8, base_seconds=5, cap_seconds=600, timeout_seconds=30
    ),
    Step.ANCHOR_POLYGON: StepPolicy(
        max_attempts=8, base_seconds=10, cap_seconds=900, timeout_seconds=60
    ),
    Step.ANCHOR_BITCOIN: StepPolicy(
        max_attempts=8, base_seconds=30, cap_seconds=1800, timeout_seconds=60
    ),
    Step.BUILD_ARTIFACT: StepPolicy(
        max_attempts=5, base_seconds=5, cap_seconds=300, timeout_seconds=120
    ),
    Step.NOTIFY_ARTIFACT_READY: StepPolicy(
        max_attempts=10, base_seconds=5, cap_seconds=1800, timeout_seconds=15
    ),
}


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

#: Design §4: Polygon 5, 10, 20, 30, 60 min (deadline 1 h); Bitcoin 15 ... 360 min (deadline 72 h).
DEFAULT_CONFIRMATIONS: dict[Step, ConfirmationPolicy] = {
    Step.ANCHOR_POLYGON: ConfirmationPolicy(
        schedule_seconds=tuple(m * MINUTE for m in (5, 10, 20, 30, 60)), deadline_seconds=1 * HOUR
    ),
    Step.ANCHOR_BITCOIN: ConfirmationPolicy(
        schedule_seconds=tuple(m * MINUTE for m in (15, 30, 60, 120, 240, 360)),
        deadline_seconds=72 * HOUR,
    ),
}
