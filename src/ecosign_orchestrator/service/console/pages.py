"""The console's routes: two pages and their assets."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.service.console.security import SecurityHeaders

PREFIX = "/ui"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")  # autoescape on for .html
router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: A job id, or a prefix or suffix of one (the API resolves it).
JOB_REF = Annotated[str, PathParam(pattern=r"^[0-9A-Fa-f-]{8,36}$")]


def install(app: FastAPI) -> None:
    """Serve the console at ``/ui`` on ``app``."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_middleware(SecurityHeaders, prefix=PREFIX)


def _context(request: Request, page: str, **extra: str) -> dict[str, str]:
    """What every page needs: whether the API asks for a token, and the asset version."""
    tokens = request.app.state.tokens
    return {
        "page": page,
        "auth": "token" if tokens.enabled else "open",
        "version": metadata.version("ecosign-orchestrator"),
        "event_types": " ".join(t.value for t in EventType),
        **extra,
    }


@router.get("", response_class=HTMLResponse)
async def flows_page(request: Request) -> HTMLResponse:
    """The flow list: counts, filters, live updates, the overview."""
    return templates.TemplateResponse(request, "flows.html", _context(request, "flows"))


@router.get("/", response_class=RedirectResponse)
async def flows_page_slash() -> RedirectResponse:
    """``/ui/`` is ``/ui``."""
    return RedirectResponse(PREFIX, status_code=308)


@router.get("/flows/{job_id}", response_class=HTMLResponse)
async def flow_page(request: Request, job_id: JOB_REF) -> HTMLResponse:
    """One flow: timeline, Edge calls, events, Retry and Cancel."""
    context = _context(request, "flow", job_id=job_id.lower())
    return templates.TemplateResponse(request, "flow.html", context)
