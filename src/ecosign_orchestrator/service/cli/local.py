"""Local modes: ``demo`` (end-to-end flows, then exit) and ``dev`` (sandbox + API + worker, until
stopped), both on the embedded defaults with the sandbox standing in for EcoSign."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ecosign_orchestrator.service.cli.common import (
    EXIT_UNAVAILABLE,
    app,
    console,
    example,
    fail,
    run,
    state,
)

#: Where ``dev`` keeps its session files (beside the default database).
DATA_DIR = Path(".ecosign-orchestrator")
ENV_FILE = DATA_DIR / "dev.env"
PID_FILE = DATA_DIR / "dev.pid"
LOG_FILE = DATA_DIR / "dev.log"
#: How long ``dev --background`` waits for the session to come up.
START_TIMEOUT = 60.0


@app.command(
    epilog=example("ecosign-orchestrator demo", "make demo   # the same, from a fresh clone")
)
def demo(
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="Plain lines instead of a live display.")
    ] = False,
    core: Annotated[
        bool, typer.Option("--core", help="Core jobs only, no document flows.")
    ] = False,
) -> None:
    """Run seven document flows end to end against the local sandbox, live, then exit.

    The demo keeps its jobs in its own database (.ecosign-orchestrator/demo.db), so a worker
    running on the default database never takes them.
    """
    from ecosign_orchestrator.service import demo as demo_module

    live = not non_interactive and sys.stdout.isatty()
    code = run(lambda: demo_module.run_demo(state.settings, live=live, core=core))
    raise typer.Exit(code)


@app.command(
    epilog=example(
        "ecosign-orchestrator dev                  # foreground; Ctrl-C stops it",
        "ecosign-orchestrator dev --background && source .ecosign-orchestrator/dev.env",
        "ecosign-orchestrator dev --stop",
    )
)
def dev(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface for both servers.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", help="The API's port (0: any).")
    ] = 8080,
    sandbox_port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", help="The sandbox's port (0: any).")
    ] = 54321,
    background: Annotated[
        bool,
        typer.Option(
            "--background", help="Start in the background, return once it is up (see --stop)."
        ),
    ] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop a background session.")] = False,
) -> None:
    """Sandbox + HTTP API + worker on the embedded defaults, with fast confirmations.

    Prints the URLs, an API token, a document it created and a ready-to-paste submit, and writes
    them as exports to .ecosign-orchestrator/dev.env for other terminals.
    """
    if stop:
        raise typer.Exit(_stop())
    if background:
        raise typer.Exit(_start_background(host, port, sandbox_port))
    from ecosign_orchestrator.service.dev import run_dev

    if "ECOSIGN_ORCH_LOG_LEVEL" not in os.environ:
        logging.getLogger().setLevel(logging.WARNING)  # the banner stays readable
    run(
        lambda: run_dev(
            state.settings,
            host=host,
            port=port,
            sandbox_port=sandbox_port,
            apps=tuple(state.apps),
            env_file=ENV_FILE,
            console=console,
        )
    )


def _running_pid() -> int | None:
    """The pid of a live background session, if any."""
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid
    return pid


def _start_background(host: str, port: int, sandbox_port: int) -> int:
    pid = _running_pid()
    if pid is not None:
        raise fail(f"a dev session is already running (pid {pid}): ecosign-orchestrator dev --stop")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    env = dict(os.environ)
    if state.database_url:
        env["ECOSIGN_ORCH_DATABASE_URL"] = state.database_url
    if state.apps:
        env["ECOSIGN_ORCH_APPS"] = ",".join(state.apps)
    command = [sys.executable, "-m", "ecosign_orchestrator", "dev", "--host", host]
    command += ["--port", str(port), "--sandbox-port", str(sandbox_port)]
    with LOG_FILE.open("ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # not stopped by the terminal's Ctrl-C
        )
    PID_FILE.write_text(str(child.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while not ENV_FILE.exists():  # the session writes it once it is up
        if child.poll() is not None or time.monotonic() > deadline:
            if child.poll() is None:
                child.terminate()
            PID_FILE.unlink(missing_ok=True)
            tail = "\n".join(LOG_FILE.read_text(errors="replace").splitlines()[-5:])
            raise fail(f"dev did not start (log: {LOG_FILE}):\n{tail}", code=EXIT_UNAVAILABLE)
        time.sleep(0.1)
    from ecosign_orchestrator.service.dev import banner

    console.print(banner(_exports(ENV_FILE.read_text())), highlight=False, soft_wrap=True)
    console.print(
        f"It runs in the background (pid {child.pid}; log {LOG_FILE}); "
        "stop it with: ecosign-orchestrator dev --stop",
        highlight=False,
    )
    return 0


def _exports(text: str) -> dict[str, str]:
    """The ``export NAME=value`` lines of a dev.env file, as written by ``DevSession``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = " ".join(shlex.split(value))
    return found


def _stop() -> int:
    pid = _running_pid()
    if pid is None:
        console.print("no dev session is running")
        PID_FILE.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running_pid() is not None:
        raise fail(f"dev (pid {pid}) did not stop within 30 s", code=EXIT_UNAVAILABLE)
    PID_FILE.unlink(missing_ok=True)
    console.print(f"dev (pid {pid}) stopped")
    return 0
