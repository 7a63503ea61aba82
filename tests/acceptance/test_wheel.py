"""Install without a clone (issue 20 §4): the built wheel goes into a fresh virtual environment
outside the source tree, and ``dev`` runs a document flow from that installation alone (its
migrations, console assets and sandbox come from the wheel)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.support.procs import ROOT


def _uv() -> str:
    found = ROOT / ".tools" / "bin" / "uv"
    if found.exists():
        return str(found)
    which = shutil.which("uv")
    assert which is not None, "uv is missing (make test installs it in .tools)"
    return which


def _run(*args: str, cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def test_the_wheel_installs_into_a_clean_venv_and_dev_runs_a_flow(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOSIGN_", "EDGE_", "SUPABASE_", "VIRTUAL_ENV", "PYTHONPATH", "UV_"))
    }
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    dist = tmp_path / "dist"
    _run(_uv(), "build", "--wheel", "--out-dir", str(dist), str(ROOT), cwd=tmp_path, env=env)
    [wheel] = dist.glob("ecosign_orchestrator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for part in ("migrations/postgres/0011_waiting.sql", "console/static/console.css", "LICENSE"):
        assert any(n.endswith(part) for n in names), part

    venv = tmp_path / "venv"
    _run(_uv(), "venv", "--python", sys.executable, str(venv), cwd=tmp_path, env=env)
    python = str(venv / "bin" / "python")
    _run(_uv(), "pip", "install", "--python", python, str(wheel), cwd=tmp_path, env=env)
    tool = str(venv / "bin" / "ecosign-orchestrator")
    home = tmp_path / "home"
    home.mkdir()
    located = _run(
        python,
        "-c",
        "import ecosign_orchestrator; print(ecosign_orchestrator.__file__)",
        cwd=home,
        env=env,
    )
    assert located.startswith(str(venv)), located  # the installation, not the source tree

    _run(tool, "dev", "--background", "--port", "0", "--sandbox-port", "0", cwd=home, env=env)
    try:
        exports = {}
        for line in (home / ".ecosign-orchestrator" / "dev.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                exports[key] = value.strip("'")
        flow_env = {**env, **exports}
        document = exports["ECOSIGN_DEV_DOCUMENT"]
        args = ["submit", "--document", document, "--protect", "--tsa", "--wait", "--json"]
        out = _run(tool, *args, cwd=home, env=flow_env)
        assert '"status": "completed"' in out
        css = httpx.get(f"{exports['ECOSIGN_DEV_API']}/ui/static/console.css", timeout=10)
        assert css.status_code == 200 and "--fg" in css.text
    finally:
        _run(tool, "dev", "--stop", cwd=home, env=env)
