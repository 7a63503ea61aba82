"""``POST /v1/document-jobs:plan``: what a DocumentJob would do, without doing it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.service.api.errors import ApiError
from ecosign_orchestrator.service.api.limits import StrictJSONRoute
from ecosign_orchestrator.service.api.routes import AUTH_RESPONSES, BODY_RESPONSES, READ, Repo
from ecosign_orchestrator.service.api.schemas import PlanOut, Problem

plan_router = APIRouter(prefix="/v1", route_class=StrictJSONRoute)


@plan_router.post(
    "/document-jobs:plan",
    dependencies=READ,
    responses={
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
        403: {
            "model": Problem,
            "description": "This server does not read EcoSign's state (document flows are not "
            "configured on it)",
        },
        503: {"model": Problem, "description": "The document's state cannot be read now"},
    },
    summary="Plan a DocumentJob against the document's current state; write nothing",
)
async def plan_document_job(intent: ecosign.DocumentJob, request: Request, repo: Repo) -> PlanOut:
    """The steps the flow would run now, each ``required``, ``skipped`` (not requested, or
    already done per the document's state) or ``awaiting`` (a confirmation), with why; the flow
    a submission would return instead of creating one (``joins``). One read of the document's
    state; nothing is written and no Edge Function is called. A read token suffices."""
    previewer: ecosign.Previewer | None = getattr(request.app.state, "previewer", None)
    if previewer is None:
        raise ApiError(
            403,
            "plans are disabled on this server: it does not read EcoSign's state (its operator "
            "sets EDGE_BASE_URL, SUPABASE_URL and ECOSIGN_ORCH_SERVICE_KEY)",
        )
    preview = await previewer.preview(intent, repo)
    return PlanOut.model_validate(preview.to_json())
