"""``ecosign-orchestrator dev``: the whole system on one machine, for a first hour that just works.

One process runs the sandbox (EcoSign's Edge Functions and REST endpoint on loopback), the HTTP
API and a worker, on the embedded SQLite default, with confirmations and backoffs scaled down so a
Bitcoin-anchored flow ends in seconds. It creates a document, then prints the URLs, a token, and a
ready-to-paste ``submit``. The same lines, as shell ``export`` statements, go to a file other
terminals (and scripts) can ``source``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import shlex
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console

from ecosign_orchestrator import sandbox
from ecosign_orchestrator.core import errors
from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.demo import sandbox_settings
from ecosign_orchestrator.service.listen import (
    bind,
    bound_port,
    stop_gracefully_on_signals,
    uvicorn_config,
)
from ecosign_orchestrator.service.settings import Settings

DEV_KEY = "dev-sandbox-service-key"
#: The sandbox confirms anchors after these many seconds (the worker polls on a scaled schedule).
POLYGON_CONFIRMS_AFTER = 0.5
BITCOIN_CONFIRMS_AFTER = 1.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DevSession:
    """What a running dev session offers another terminal."""

    sandbox_url: str
    api_url: str
    token: str
    database_url: str
    document_id: str
    settings: Settings

    def exports(self) -> dict[str, str]:
        """The environment another terminal needs (CLI, a separate worker, scripts)."""
        return {
            "ECOSIGN_ORCH_DATABASE_URL": self.database_url,
            "EDGE_BASE_URL": self.sandbox_url,
            "SUPABASE_URL": self.sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": DEV_KEY,
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": str(self.settings.confirmation_scale),
            "ECOSIGN_ORCH_BACKOFF_SCALE": str(self.settings.backoff_scale),
            "ECOSIGN_ORCH_EDGE_TIMEOUT_SCALE": str(self.settings.edge_timeout_scale),
            "ECOSIGN_ORCH_API_TOKEN": self.token,
            "ECOSIGN_DEV_API": self.api_url,
            "ECOSIGN_DEV_DOCUMENT": self.document_id,
        }

    def env_file(self) -> str:
        """``exports`` as a file for ``source``."""
        lines = ["# written by `ecosign-orchestrator dev`; `source` it in another terminal"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.exports().items()]
        return "\n".join(lines) + "\n"

    def banner(self) -> str:
        """What the terminal shows once everything is up."""
        return banner(self.exports())


def banner(exports: dict[str, str]) -> str:
    """What a dev session offers, from its exports (the foreground session prints it; so does
    ``dev --background`` once the session is up)."""
    api = exports["ECOSIGN_DEV_API"]
    sandbox_url = exports["EDGE_BASE_URL"]
    return "\n".join(
        [
            "[bold]ecosign-orchestrator dev[/]: sandbox, API and worker are up",
            f"  sandbox   {sandbox_url}   (EcoSign's Edge Functions, on loopback)",
            f"  API       {api}   (OpenAPI: {api}/docs)",
            f"  console   {api}/ui   (asks for the token below once per tab)",
            f"  token     {exports['ECOSIGN_ORCH_API_TOKEN']}",
            f"  jobs in   {exports['ECOSIGN_ORCH_DATABASE_URL']}",
            f"  document  {exports['ECOSIGN_DEV_DOCUMENT']}   (a sandbox document)",
            "",
            "In another terminal:",
            "  source .ecosign-orchestrator/dev.env",
            '  ecosign-orchestrator submit --document "$ECOSIGN_DEV_DOCUMENT" '
            "--protect --tsa --bitcoin --wait",
            '  ecosign-orchestrator --api-url "$ECOSIGN_DEV_API" jobs list',
            "  ecosign-orchestrator sandbox new-document    # another document id",
            "  ecosign-orchestrator sandbox faults run-tsa --rate 0.5 --status 503",
            "  ecosign-orchestrator sandbox timing --bitcoin never   # flows wait for bitcoin",
        ]
    )


async def create_document(sandbox_url: str, key: str, request_shape: str | None = None) -> str:
    """A new document in the sandbox, with EcoSign's protection request (in the sandbox's
    request shape, or ``request_shape``); its ``document_entity_id``."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {} if request_shape is None else {"request": {"shape": request_shape}}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=headers, timeout=10) as client:
        response = await client.post("/admin/documents", json=body)
        response.raise_for_status()
        document_id: str = response.json()["id"]
        return document_id


async def run_dev(
    settings: Settings,
    *,
    host: str,
    port: int,
    sandbox_port: int,
    apps: tuple[str, ...],
    env_file: Path,
    console: Console,
) -> None:
    """Serve until SIGINT/SIGTERM; ``env_file`` exists exactly while the session is up."""
    from ecosign_orchestrator.service.acceptor import GuardedServer
    from ecosign_orchestrator.service.api import create_app

    api_socket = bind(host, port)
    probe = bind(host, sandbox_port)  # a clear error if taken; the sandbox binds it next
    sandbox_port = bound_port(probe)
    probe.close()
    timing = sandbox.AnchorTiming(polygon=POLYGON_CONFIRMS_AFTER, bitcoin=BITCOIN_CONFIRMS_AFTER)
    server = sandbox.SandboxServer(
        sandbox.create_app(DEV_KEY, timing=timing), host=host, port=sandbox_port
    )
    try:
        await asyncio.to_thread(server.start)
    except RuntimeError as exc:
        raise errors.Unavailable(f"the sandbox could not start: {exc}") from None
    try:
        token = _token(settings)
        dev = sandbox_settings(settings, server.url, DEV_KEY).model_copy(
            update={"api_tokens": [SecretStr(token)]}
        )
        async with wiring.open_repository(dev):
            pass  # create and migrate the database before announcing it
        api_url = f"http://{host}:{bound_port(api_socket)}"
        session = DevSession(
            sandbox_url=server.url,
            api_url=api_url,
            token=token,
            database_url=f"sqlite:///{dev.database_location}"
            if dev.database_url_value.startswith("sqlite:")
            else dev.database_url_value,
            document_id=await create_document(server.url, DEV_KEY),
            settings=dev,
        )
        api = GuardedServer(
            uvicorn_config(create_app(dev, apps=apps, embedded_worker=True), dev.http_limits())
        )
        await _serve(api, api_socket, session, env_file, console)
    finally:
        with contextlib.suppress(FileNotFoundError):
            env_file.unlink()
        await asyncio.to_thread(server.stop)


def _token(settings: Settings) -> str:
    """The first configured API token, or a fresh one for this session."""
    if settings.api_tokens:
        return settings.api_tokens[0].get_secret_value()
    return "dev-" + secrets.token_urlsafe(24)


async def _serve(
    api: Any, sock: Any, session: DevSession, env_file: Path, console: Console
) -> None:
    stop_gracefully_on_signals(api)
    serving = asyncio.create_task(api.serve(sockets=[sock]), name="dev-api")
    while not api.started:  # uvicorn offers no event: wait for its startup flag
        if serving.done():
            await serving
            raise errors.Unavailable("the API stopped during start-up (see the log above)")
        await asyncio.sleep(0.05)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    partial = env_file.with_suffix(".tmp")
    partial.write_text(session.env_file())
    partial.replace(env_file)  # readers never see half a file
    console.print(session.banner(), highlight=False)
    await serving
