"""Start real ``ecosign-orchestrator`` processes for tests and wait on conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a CLI subprocess on ``database_url`` with the test kinds importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSIGN_ORCH_")}
    env.update(
        {
            "ECOSIGN_ORCH_DATABASE_URL": database_url,
            "ECOSIGN_ORCH_APPS": "tests.support.kinds:registry",
            "ECOSIGN_ORCH_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra or {})
    return env


def cli(
    *args: str, env: Mapping[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion."""
    return subprocess.run(
        [sys.executable, "-m", "ecosign_orchestrator", *args],
        env=dict(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def start_worker(
    env: Mapping[str, str], *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``ecosign-orchestrator worker`` in the background."""
    return start_cli(env, "worker", *args, log=log)


def start_cli(
    env: Mapping[str, str], *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start any CLI command in the background, its output appended to ``log``, with the
    signals of a terminal's foreground command (see :mod:`tests.support.foreground`)."""
    command = [sys.executable, "-m", "tests.support.foreground", *args]
    with contextlib.ExitStack() as stack:  # the child keeps its own copy of the descriptor
        out = subprocess.DEVNULL if log is None else stack.enter_context(open(log, "ab"))
        return subprocess.Popen(
            command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "",
) -> None:
    """Await ``condition()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM a process and wait for it (SIGKILL as a last resort)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def diagnose(pid: int) -> str:
    """Why a process did not exit on a signal: its state and signal masks from ``/proc``
    (pending, blocked, ignored, caught: hexadecimal bit sets, bit n-1 for signal n)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        return f"process {pid}: no status ({exc})"
    wanted = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "Threads")
    lines = [line for line in status.splitlines() if line.split(":")[0] in wanted]
    return f"process {pid} did not exit: " + "; ".join(" ".join(x.split()) for x in lines)
