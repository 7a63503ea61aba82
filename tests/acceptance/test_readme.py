"""The README's commands work when pasted in order: every ```bash block, run as one script.

The scratch folder stands for a fresh clone: the project's files are linked into it and
``make demo`` builds the folder's own ``.venv`` with ``uv sync --frozen`` (from uv's cache, so in
seconds); only the bootstrapped ``uv`` itself (``.tools``) is shared. The one command that is not
run for real is ``make test`` (this test is part of it): ``make -n test`` checks that the target
exists and what it would run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.procs import ROOT

README = ROOT / "README.md"
#: What a clone holds that the README's commands use (never the environment: make builds it).
LINKED = ("Makefile", "pyproject.toml", "uv.lock", "src", "README.md", ".tools", "clients")


def shell_blocks(text: str) -> list[str]:
    """The ```bash blocks of a Markdown text, in order."""
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_has_the_two_first_commands_and_a_walkthrough() -> None:
    blocks = shell_blocks(README.read_text())
    assert blocks[0].split("\n")[0].startswith("make demo")
    assert "make test" in blocks[0]
    assert any("dev --background" in b for b in blocks) and "dev --stop" in blocks[-1]


def test_every_readme_shell_block_runs_in_order_in_a_scratch_folder(tmp_path: Path) -> None:
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    script = "\n".join(shell_blocks(README.read_text()))
    script = re.sub(r"^make test\b", "make -n test >/dev/null", script, flags=re.MULTILINE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOSIGN_ORCH_", "ECOSIGN_DEV_", "EDGE_", "SUPABASE_", "VIRTUAL_ENV"))
    }
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:  # a failure midway must not leave the background session running
        if (tmp_path / ".venv").exists():
            subprocess.run(
                [str(tmp_path / ".venv" / "bin" / "ecosign-orchestrator"), "dev", "--stop"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                timeout=60,
            )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    out = result.stdout
    assert "Summary" in out  # make demo ran its flows
    assert "job_completed" in out  # events --follow saw the NDA flow end
    assert "thumbnails.make" in out and "completed" in out
    assert (tmp_path / "flows.json").read_text().startswith("{")
    assert not (tmp_path / ".ecosign-orchestrator" / "dev.env").exists()  # dev --stop cleaned up
    assert (tmp_path / ".venv" / "bin" / "ecosign-orchestrator").exists()  # make built its own
