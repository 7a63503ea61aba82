"""``make demo``'s entry point, non-interactive, on a fresh SQLite default (acceptance 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT


def test_demo_runs_every_flow_to_its_expected_end(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOSIGN_ORCH_", "EDGE_", "SUPABASE_"))
    }
    env["PYTHONPATH"] = str(ROOT / "src")
    result = subprocess.run(
        [sys.executable, "-m", "ecosign_orchestrator", "demo", "--non-interactive"],
        cwd=tmp_path,  # the embedded default database lands in ./.ecosign-orchestrator/
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Summary" in out and out.count("completed") >= 6 and "failed" in out
    assert "missing_witness_pdf" in out
    assert (tmp_path / ".ecosign-orchestrator" / "jobs.db").exists()


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
