"""Waiting: a flow that has nothing to call but must wait for something outside it (an
anchor's confirmation, a step done outside the orchestrator) polls the document's state on a
schedule and snoozes in between, spending no attempt; at the deadline the step fails. A flow
that fails waits for nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NoReturn

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.job import JobError, StepStatus, utcnow
from ecosign_orchestrator.core.types import JSONDict
from ecosign_orchestrator.ecosign import state as st
from ecosign_orchestrator.ecosign.config import EcosignConfig
from ecosign_orchestrator.ecosign.planner import Plan
from ecosign_orchestrator.ecosign.steps import ConfirmationPolicy, Step


def isoformat(moment: datetime) -> str:
    """A time as stored in step data."""
    return moment.isoformat()


def schedule_next_poll(
    data: JSONDict, policy: ConfirmationPolicy, deadline: datetime, now: datetime
) -> float:
    """Count one more poll in a waiting step's ``data`` and set when the next is due (on the
    policy's schedule, never past the deadline); returns the delay in seconds."""
    polls_value = data.get("polls", 0)
    polls = polls_value if isinstance(polls_value, int) else 0
    delay = min(policy.delay(polls), (deadline - now).total_seconds() + 0.001)
    data.update({"polls": polls + 1, "next_poll_at": isoformat(now + timedelta(seconds=delay))})
    return delay


def deadline_reason(network: str, policy: ConfirmationPolicy, resubmitted: bool) -> str:
    """Why waiting for an anchor's confirmation ended at its deadline."""
    if not resubmitted:
        return f"no {network} confirmation within {policy.deadline_seconds:g}s"
    # EcoSign keys anchor.timeout by (witness, network, stage, step): the confirmer's give-up on
    # a re-submission is de-duplicated away, so the deadline is what ends this wait.
    return (
        f"no {network} confirmation within {policy.deadline_seconds:g}s of its re-submission "
        "(EcoSign records a repeated give-up only once: the deadline ends the wait)"
    )


async def stop_waiting(ctx: JobContext, exc: errors.FatalError) -> None:
    """A failed flow waits for nothing: steps still waiting (another anchor's confirmation) or
    due for a retry go back to pending, with no next poll, saying why. Their records keep what
    was submitted, so a retry of the flow resumes waiting instead of submitting again."""
    failed = exc.details.get("step")
    for name, record in ctx.steps.items():
        if name == failed or record.status not in (StepStatus.WAITING, StepStatus.RETRYING):
            continue
        await ctx.record_step(
            name,
            StepStatus.PENDING,
            message=f"no longer waited for: the flow failed{f' at {failed}' if failed else ''}",
            data={"next_poll_at": None, "retry_at": None, "held_until": None},
        )


async def await_confirmations(
    ctx: JobContext, plan: Plan, state: st.DocumentState, config: EcosignConfig
) -> NoReturn:
    """Poll each pending anchor on its own network's schedule, then snooze until the next
    poll that is due. A wake-up for one network does not advance another's schedule."""
    now = utcnow()
    waits: list[float] = []
    deadlines: list[datetime] = []
    for planned in plan.awaiting():
        step = planned.step
        assert step.network is not None
        record = ctx.steps[step.value]
        data = dict(record.data)
        own = "submitted_at" in data
        if not own:
            # A submission this flow did not make (an earlier flow's, still pending): the
            # confirmation window starts now.
            data = {**data, "submitted_at": isoformat(now), "polls": 0}
            data.pop("next_poll_at", None)
        submitted_at = st.parse_time(data["submitted_at"]) or now
        policy = config.confirmations[step]
        given_up = st.anchor_given_up(
            state, step.network, plan.witness_hash, since=submitted_at if own else None
        )
        deadline = submitted_at + timedelta(seconds=policy.deadline_seconds)
        if given_up is not None or now >= deadline:
            reason = (
                f"the {step.network} confirmer gave up: {given_up}"
                if given_up
                else deadline_reason(step.network, policy, bool(data.get("resubmitted")))
            )
            error = JobError(type="ConfirmationFailed", message=reason, transient=False)
            await ctx.step_failed(step.value, error)
            raise errors.FatalError(f"{step.value}: {reason}", details={"step": step.value})
        next_poll = st.parse_time(data.get("next_poll_at"))
        if next_poll is not None and next_poll > now:
            waits.append((next_poll - now).total_seconds())  # not this network's turn yet
            deadlines.append(deadline)
            continue
        delay = schedule_next_poll(data, policy, deadline, now)
        data["deadline_at"] = isoformat(deadline)
        await ctx.record_step(
            step.value,
            StepStatus.WAITING,
            message=f"waiting for the {step.network} confirmation (check {data['polls']})",
            data=data,
            quiet=record.status is StepStatus.WAITING,  # another check of the same wait
        )
        waits.append(delay)
        deadlines.append(deadline)
    networks = " and ".join(p.step.network or "" for p in plan.awaiting())
    anchors = "anchors" if len(plan.awaiting()) > 1 else "anchor"
    ctx.snooze(
        min(waits),
        f"confirmation of the {networks} {anchors}",
        deadline=min(deadlines, default=None),
    )


async def await_gate(ctx: JobContext, step: Step, config: EcosignConfig) -> NoReturn:
    """A step done outside the orchestrator: call nothing, wait on the gate's schedule for
    the document's state to show it, and fail the step at the deadline."""
    now = utcnow()
    record = ctx.steps.get(step.value)
    data = dict(record.data) if record is not None else {}
    if record is None or record.status is not StepStatus.WAITING or "gate_since" not in data:
        data = {"gate_since": isoformat(now), "polls": 0}  # a fresh window (retry too)
    since = st.parse_time(data["gate_since"]) or now
    policy = config.gates[step]
    deadline = since + timedelta(seconds=policy.deadline_seconds)
    if now >= deadline:
        reason = (
            f"the document's state did not show {step.value} done within "
            f"{policy.deadline_seconds:g}s (it is done outside the orchestrator)"
        )
        error = JobError(type="StateGateTimeout", message=reason, transient=False)
        await ctx.step_failed(step.value, error)
        raise errors.FatalError(f"{step.value}: {reason}", details={"step": step.value})
    delay = schedule_next_poll(data, policy, deadline, now)
    data["deadline_at"] = isoformat(deadline)
    await ctx.record_step(
        step.value,
        StepStatus.WAITING,
        message=(
            f"waiting for the document's state to show it (done outside the orchestrator; "
            f"check {data['polls']})"
        ),
        data=data,
        quiet=record is not None and record.status is StepStatus.WAITING,
    )
    ctx.snooze(
        delay,
        f"the document's state to show {step.value} (done outside the orchestrator)",
        deadline=deadline,
    )
