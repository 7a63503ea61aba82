"""``make demo``'s entry point, non-interactive, on the embedded defaults."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT, cli_env, eventually, start_worker, stop


async def test_demo_runs_every_flow_to_its_end_while_a_worker_polls_the_default_database(
    tmp_path: Path,
) -> None:
    # A worker left running from the README, on the default database of this folder, with
    # Edge settings that fail every call: if it took a demo flow, that flow would fail.
    default_db = tmp_path / ".ecosign-orchestrator" / "jobs.db"
    worker_log = tmp_path / "worker.log"
    worker_env = cli_env(
        f"sqlite:///{default_db}",
        {
            "EDGE_BASE_URL": "http://127.0.0.1:9",
            "SUPABASE_URL": "http://127.0.0.1:9",
            "ECOSIGN_ORCH_SERVICE_KEY": "wrong-key",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_MAX_POLL_SECONDS": "0.1",
        },
    )
    worker = start_worker(worker_env, log=worker_log)
    try:
        await eventually(
            lambda: _contains(worker_log, "worker_started"), timeout=30, what="the worker polls"
        )
        result = _run_demo(tmp_path)
        assert worker.poll() is None, "the other worker is still polling"
    finally:
        stop(worker)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Summary" in out and out.count("completed") >= 6 and "failed" in out
    assert "missing_witness_pdf" in out
    assert (tmp_path / ".ecosign-orchestrator" / "demo.db").exists()
    with sqlite3.connect(default_db) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert "job_claimed" not in worker_log.read_text()


async def _contains(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


def _run_demo(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOSIGN_ORCH_", "EDGE_", "SUPABASE_"))
    }
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, "-m", "ecosign_orchestrator", "demo", "--non-interactive"],
        cwd=cwd,  # the demo's own database lands in ./.ecosign-orchestrator/demo.db
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_worker_refuses_to_start_document_flows_without_edge_settings(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOSIGN_ORCH_", "EDGE_", "SUPABASE_"))
    }
    env["ECOSIGN_ORCH_DATABASE_URL"] = f"sqlite:///{tmp_path}/jobs.db"
    result = subprocess.run(
        [sys.executable, "-m", "ecosign_orchestrator", "worker", "--kind", "ecosign.document"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "EDGE_BASE_URL" in message and "SUPABASE_URL" in message and "SERVICE_KEY" in message
