"""The document processor: the orchestrator's brain for one ``DocumentJob`` (design §2, §4).

Each run reads the document's state, plans, calls the next Edge Function, records the step through
the job context, and loops until the flow is complete, must wait (snooze until the next
confirmation poll, no attempt spent), must retry (the step's own backoff), or has failed. Because
every run re-plans from state, finished steps are skipped by construction.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any, NoReturn

import pydantic

from ecosign_orchestrator.core import errors, observe
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.job import JobError, StepRecord, StepStatus, utcnow
from ecosign_orchestrator.core.retry import RetryPolicy
from ecosign_orchestrator.core.types import JSONDict, JSONValue
from ecosign_orchestrator.ecosign import planner, waiting
from ecosign_orchestrator.ecosign import state as st
from ecosign_orchestrator.ecosign.config import EcosignConfig
from ecosign_orchestrator.ecosign.edge import EdgeClient
from ecosign_orchestrator.ecosign.http import CallError
from ecosign_orchestrator.ecosign.lifecycle import implied_lifecycle, may_write_back
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.planner import Disposition, Plan, PlannedStep
from ecosign_orchestrator.ecosign.state_source import DocumentNotFound, DocumentStateSource
from ecosign_orchestrator.ecosign.steps import (
    ANCHOR_STEPS,
    CANONICAL_ORDER,
    Step,
)
from ecosign_orchestrator.ecosign.submission import check_step_inputs

logger = logging.getLogger(__name__)


def validate_payload(payload: JSONDict) -> JSONDict:
    """Enqueue-time validation: a normalised ``DocumentJob`` or ``InvalidJob`` naming the field."""
    try:
        intent = DocumentJob.model_validate(payload)
    except pydantic.ValidationError as exc:
        problems = [
            (
                ".".join(str(p) for p in e["loc"]) or "payload",
                e["msg"].removeprefix("Value error, "),
            )
            for e in exc.errors()
        ]
        field = problems[0][0]
        reason = "; ".join(f"{f}: {m}" for f, m in problems)[len(field) + 2 :]
        raise errors.InvalidJob(field, reason) from None
    check_step_inputs(intent)
    data: JSONDict = intent.model_dump(mode="json", exclude_none=True)
    return data


def _step_attempts(record: StepRecord) -> int:
    """Attempts since the last manual retry (a failed step starts counting afresh)."""
    base = record.data.get("attempt_base", 0)
    return record.attempts - (base if isinstance(base, int) else 0)


def _check_witness(intent: DocumentJob, state: st.DocumentState) -> None:
    """A ``metadata.witness_hash`` must be a witness the document has had (the current one or
    one in its history): the caller never chooses what is signed."""
    declared = intent.declared_witness_hash
    if declared is not None and not state.has_witness(declared):
        raise errors.FatalError(
            f"metadata.witness_hash: {WITNESS_UNKNOWN}",
            details={"field": "metadata.witness_hash", "witness_hash": declared},
        )


def _check_signable(step: Step, plan: Plan, state: st.DocumentState) -> None:
    """EcoSign timestamps only the document's current witness (its ledger trigger refuses a
    ``tsa.confirmed`` for any other hash): a stage whose witness has been superseded before its
    TSA was taken can never get one, so the flow fails now instead of spending the budget."""
    if step is Step.APPEND_TSA and plan.witness_hash != state.current_witness_hash:
        raise errors.FatalError(
            f"{step.value}: the witness this stage signs ({plan.witness_hash}) is no longer the "
            "document's current witness, and EcoSign timestamps only the current one",
            details={"step": step.value, "witness_hash": plan.witness_hash},
        )


#: Why a ``metadata.witness_hash`` is refused (at submission, or when the flow runs).
WITNESS_UNKNOWN = (
    "not a witness of this document (neither its current witness nor one in its witness "
    "history); a flow signs only a witness the document has had"
)


class DocumentProcessor:
    """The core ``Processor`` for kind ``ecosign.document``."""

    def __init__(
        self,
        edge: EdgeClient,
        source: DocumentStateSource,
        config: EcosignConfig | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.edge = edge
        self.source = source
        self.config = config or EcosignConfig()
        self._rng = rng or random.Random()

    async def __call__(self, ctx: JobContext) -> JSONValue:
        try:
            intent = DocumentJob.model_validate(ctx.payload)
        except pydantic.ValidationError as exc:
            raise errors.FatalError(f"invalid DocumentJob payload: {exc}") from None
        with observe.bind(document_id=intent.document_entity_id):
            try:
                return await self._run(ctx, intent)
            except errors.FatalError as exc:
                await waiting.stop_waiting(ctx, exc)
                raise

    async def _run(self, ctx: JobContext, intent: DocumentJob) -> JSONValue:
        if not ctx.steps:
            await ctx.plan_steps([s.value for s in CANONICAL_ORDER])
        replanned = False
        called: set[Step] = set()
        unchanged: st.DocumentState | None = None
        for _ in range(self.config.max_calls_per_run + 1):
            state = unchanged or await self._read(ctx, intent)
            _check_witness(intent, state)
            plan = self._plan(ctx, intent, state)
            if unchanged is not None and not plan.complete:
                unchanged = None  # more to do: decide it on a fresh read
                continue
            await self._record_plan(ctx, plan)
            nxt = plan.next_call()
            if nxt is not None and nxt.step in self.config.gates:
                await waiting.await_gate(ctx, nxt.step, self.config)
            if nxt is None:
                if plan.complete:
                    return await self._finish(ctx, intent, plan, state)
                await waiting.await_confirmations(ctx, plan, state, self.config)
            if nxt.step in called:
                # The function said it succeeded, yet the state does not show it: a failure of
                # this step, retried under the step's own budget and backoff (not the job's).
                unseen = CallError(
                    self.config.functions[nxt.step],
                    "answered success but the document's state does not show it",
                    status=200,
                    transient=True,
                )
                await self._step_failed(ctx, nxt.step, unseen)
            _check_signable(nxt.step, plan, state)
            try:
                with observe.bind(step=nxt.step.value):
                    await self._call(ctx, intent, plan, nxt)
            except CallError as exc:
                if exc.precondition and not replanned:
                    replanned = True  # the state may have moved on: read it again, once
                    ctx.log.info("precondition failed (%s); re-planning from state", exc.reason)
                    continue
                await self._step_failed(ctx, nxt.step, exc)
            called.add(nxt.step)
            if nxt.step.spec.satisfied_by is None:
                # The state cannot show this step (only our record of its success does), and
                # the read before the call verified every earlier one: if that finishes the
                # flow, another read would decide nothing (one HTTP request less per flow).
                unchanged = state
        raise errors.TransientError("too many calls in one run; continuing in the next run")

    # -- reading and planning ------------------------------------------------------------------

    async def _read(self, ctx: JobContext, intent: DocumentJob) -> st.DocumentState:
        ctx.ensure_lease()
        try:
            return await self.source.read(intent.document_entity_id)
        except DocumentNotFound as exc:
            raise errors.FatalError(
                str(exc), details={"document_entity_id": exc.document_id}
            ) from None
        except CallError as exc:
            if exc.transient:
                raise errors.TransientError(
                    f"reading document state: {exc}",
                    retry_after=exc.retry_after,
                    details=exc.details(),
                ) from None
            raise errors.FatalError(
                f"reading document state: {exc}", details=exc.details()
            ) from None

    def _plan(self, ctx: JobContext, intent: DocumentJob, state: st.DocumentState) -> Plan:
        steps = ctx.steps
        recorded = frozenset(
            s
            for s in CANONICAL_ORDER
            if (record := steps.get(s.value)) is not None and record.status is StepStatus.SUCCEEDED
        )
        anchors = {s: r for s in ANCHOR_STEPS if (r := steps.get(s.value)) is not None}
        abandoned = frozenset(s for s, r in anchors.items() if r.status is StepStatus.FAILED)
        submitted = frozenset(
            s for s, r in anchors.items() if "submitted_at" in r.data and s not in abandoned
        )
        return planner.plan(
            intent, state, recorded=recorded, submitted=submitted, abandoned=abandoned
        )

    async def _record_plan(self, ctx: JobContext, plan: Plan) -> None:
        """Bring the step records in line with the plan (skips, confirmations)."""
        for planned in plan.steps:
            record = ctx.steps.get(planned.step.value)
            status = None if record is None else record.status
            if planned.disposition is Disposition.NOT_REQUIRED and status is not StepStatus.SKIPPED:
                await ctx.step_skipped(planned.step.value, "not required by this intent")
            elif planned.disposition is Disposition.SATISFIED:
                if status is StepStatus.WAITING:  # a confirmation or a state gate came true
                    await ctx.step_succeeded(planned.step.value, planned.step.spec.done_in_state)
                elif status not in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
                    attempted = record is not None and record.attempts > 0
                    if attempted:
                        await ctx.step_succeeded(planned.step.value, "done (seen in state)")
                    else:
                        await ctx.step_skipped(
                            planned.step.value, "already satisfied by the document's state"
                        )

    # -- calling -------------------------------------------------------------------------------

    def _body(self, intent: DocumentJob, plan: Plan, step: Step) -> dict[str, Any]:
        doc_id = intent.document_entity_id
        metadata = intent.metadata or {}
        spec = step.spec
        body: dict[str, Any] = {"document_entity_id": doc_id, "correlation_id": doc_id}
        body.update(spec.body)
        if spec.signs_witness:
            body["witness_hash"] = plan.witness_hash
        if step.network is not None:
            body["anchor_stage"] = metadata.get("anchor_stage", "initial")
            body["step_index"] = metadata.get("step_index", 0)
        extra = metadata.get("step_inputs", {})
        if isinstance(extra, dict) and isinstance(extra.get(step.value), dict):
            # Only the inputs the step table allows a caller (a payload stored before the rule
            # is filtered the same way); the orchestrator's own fields are set last.
            allowed = {k: v for k, v in extra[step.value].items() if k in spec.caller_inputs}
            body = {**allowed, **body}
        body.update(self.config.body_fields.get(step, {}))  # the operator's configuration wins
        return body

    async def _call(
        self, ctx: JobContext, intent: DocumentJob, plan: Plan, planned: PlannedStep
    ) -> None:
        step = planned.step
        policy = self.config.policies[step]
        function = self.config.functions[step]
        record = ctx.steps.get(step.value)
        if record is not None and record.status is StepStatus.FAILED:
            # A manual retry of a failed flow: this step gets a fresh set of attempts (and an
            # anchor is submitted again: its earlier confirmation was given up on).
            fresh: JSONDict = {"attempt_base": record.attempts}
            if step.network is not None:
                fresh["resubmitted"] = True
            await ctx.record_step(step.value, StepStatus.PENDING, data=fresh)
        limit = self.config.function_limits.get(function)
        if limit is not None and not await ctx.take_slot(function, limit):
            await self._hold(
                ctx,
                step,
                self._rng.uniform(0.5, 1.5) * self.config.slot_wait_seconds,
                f"a free slot of {function} ({limit} in flight fleet-wide)",
            )
        try:
            rate = self.config.function_rates.get(function)
            if rate is not None and (wait := await ctx.take_rate(function, *rate)) > 0:
                per, seconds = rate
                await self._hold(
                    ctx, step, wait, f"the rate of {function} ({per} per {seconds:g}s)"
                )
            gate = await ctx.circuit_gate(function, self.config.circuit)
            if not gate.go:
                await self._hold(
                    ctx, step, gate.wait_seconds, f"the circuit of {function} to close"
                )
            started = await ctx.step_started(step.value, f"calling {function}")
            ctx.ensure_lease()
            response = await self.edge.call(
                function,
                self._body(intent, plan, step),
                idempotency_key=f"{ctx.job.id}:{step.value}",
                timeout=policy.timeout_seconds,
                headers={**self.config.headers.get(step, {}), **ctx.trace_headers()},
                log=ctx.record_call,
                step=step.value,
                attempt=started.attempts,
            )
            if gate.failures or gate.probe:
                await ctx.circuit_success(function)
        finally:
            if limit is not None:
                await ctx.give_slot(function)
        summary: JSONDict = {
            k: v for k, v in response.items() if isinstance(v, str | int | float | bool)
        }
        if step.network is not None:
            await ctx.step_waiting(
                step.value,
                f"submitted to {step.network}; waiting for confirmation",
                data={"submitted_at": waiting.isoformat(utcnow()), "polls": 0, "response": summary},
            )
        else:
            message = "already done (noop)" if response.get("noop") else "done"
            await ctx.step_succeeded(step.value, message, data={"response": summary})

    async def _hold(self, ctx: JobContext, step: Step, seconds: float, why: str) -> NoReturn:
        """The step waits (no attempt spent) for ``why``: say so in its record (an event only
        when the wait begins or changes), and snooze."""
        until = utcnow() + timedelta(seconds=seconds)
        record = ctx.steps.get(step.value)
        same = record is not None and record.status is StepStatus.WAITING
        same = same and record is not None and record.data.get("held_for") == why
        await ctx.record_step(
            step.value,
            StepStatus.WAITING,
            message=f"waiting for {why}",
            data={"held_until": waiting.isoformat(until), "held_for": why},
            quiet=same,
        )
        ctx.snooze(seconds, why)

    async def _step_failed(self, ctx: JobContext, step: Step, exc: CallError) -> None:
        """A call that was sent and failed: it always counts against the step's budget (only
        calls an open circuit held back, never sent, are free). A transient failure within the
        budget retries after the step's backoff, or later if the failure opened the circuit."""
        policy = self.config.policies[step]
        attempts = _step_attempts(ctx.steps[step.value])
        error = JobError(
            type="EdgeFunctionError",
            message=str(exc),
            transient=exc.transient,
            details=exc.details(),
        )
        function = self.config.functions[step]
        held = 0.0
        if exc.transient and exc.status != 200:  # (200: answered, but the state disagrees)
            # only a rate limit (429, 546) holds everyone for its Retry-After; for other
            # answers it is this flow's own backoff
            pause = exc.retry_after if exc.status in (429, 546) else None
            held = await ctx.circuit_failure(function, self.config.circuit, pause)
        if exc.transient and attempts < policy.max_attempts:
            backoff = RetryPolicy(
                max_attempts=policy.max_attempts,
                base_seconds=policy.base_seconds,
                cap_seconds=policy.cap_seconds,
            )
            delay = max(backoff.delay(attempts, retry_after=exc.retry_after, rng=self._rng), held)
            why = f"; circuit open for {function}, calls held" if held >= delay > 0 else ""
            await ctx.record_step(
                step.value,
                StepStatus.RETRYING,
                message=(
                    f"{exc} (attempt {attempts}/{policy.max_attempts}; retry in {delay:.1f}s{why})"
                ),
                error=error,
                data={"retry_at": waiting.isoformat(utcnow() + timedelta(seconds=delay))},
            )
            raise errors.TransientError(
                f"{step.value}: {exc}",
                retry_after=exc.retry_after,
                delay=delay,
                details=exc.details(),
            )
        await ctx.step_failed(step.value, error)
        suffix = f" (attempts exhausted: {attempts}/{policy.max_attempts})" if exc.transient else ""
        raise errors.FatalError(
            f"{step.value}: {exc}{suffix}", details={"step": step.value, **exc.details()}
        )

    # -- finishing ---------------------------------------------------------------------------

    async def _finish(
        self, ctx: JobContext, intent: DocumentJob, plan: Plan, state: st.DocumentState
    ) -> JSONValue:
        lifecycle = implied_lifecycle(intent, completed=True)
        written = False
        current = state.lifecycle_status
        if (
            self.config.lifecycle_write_back
            and lifecycle is not None
            and may_write_back(current, lifecycle)
        ):
            ctx.ensure_lease()
            try:
                await self.source.write_lifecycle(
                    intent.document_entity_id, lifecycle, expected=current
                )
                written = True
            except DocumentNotFound as exc:
                raise errors.FatalError(str(exc)) from None
            except CallError as exc:
                if exc.transient:
                    raise errors.TransientError(f"lifecycle write-back: {exc}") from None
                raise errors.FatalError(f"lifecycle write-back: {exc}") from None
        steps: JSONDict = {name: record.status.value for name, record in ctx.steps.items()}
        ctx.log.info("document flow completed", extra={"action": "flow_completed"})
        return {
            "document_entity_id": intent.document_entity_id,
            "witness_hash": plan.witness_hash,
            "lifecycle_status": lifecycle,
            "lifecycle_written": written,
            "steps": steps,
        }
