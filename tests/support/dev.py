"""A ``dev --background`` session in a temporary folder, driven through the CLI as a user would."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import ROOT

PY = [sys.executable, "-m", "ecosign_orchestrator"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any of ours: what a fresh terminal has."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOSIGN_ORCH_", "ECOSIGN_DEV_", "EDGE_", "SUPABASE_", "COLUMNS"))
    }
    env.update({"PYTHONPATH": str(ROOT / "src"), **extra})
    return env


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``ecosign-orchestrator ARGS`` in ``cwd`` to completion."""
    return subprocess.run(
        [*PY, *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dev_env(folder: Path, **extra: str) -> dict[str, str]:
    """The variables ``dev`` wrote for other terminals, as ``source`` would set them."""
    env = clean_env(**extra)
    for line in (folder / ".ecosign-orchestrator" / "dev.env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
    return env


@contextlib.contextmanager
def dev_running(folder: Path, **env: str) -> Iterator[Path]:
    """A background dev session (sandbox, API, worker) in ``folder``, started with ``env``
    added to a fresh terminal's, and stopped afterwards; what it printed is in started.txt."""
    started = run_cli(
        folder, "dev", "--background", "--port", "0", "--sandbox-port", "0", env=clean_env(**env)
    )
    assert started.returncode == 0, started.stdout + started.stderr
    (folder / "started.txt").write_text(started.stdout)
    try:
        yield folder
    finally:
        stopped = run_cli(folder, "dev", "--stop")
        assert stopped.returncode == 0, stopped.stderr
        assert not (folder / ".ecosign-orchestrator" / "dev.env").exists()


@pytest.fixture
def dev_session(tmp_path: Path) -> Iterator[Path]:
    """A background dev session in ``tmp_path`` (see ``dev_running``)."""
    with dev_running(tmp_path) as folder:
        yield folder
