"""What a new user meets in the first hour: dev mode, pure JSON, short ids, help, clear errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ecosign_orchestrator.service.cli import app, register_commands
from tests.support.dev import clean_env, dev_env, run_cli
from tests.support.procs import ROOT, cli_env

_clean_env = clean_env
_run = run_cli
_dev_env = dev_env


def test_dev_runs_a_bitcoin_flow_to_completion_and_json_output_is_pure(
    dev_session: Path,
) -> None:
    env = _dev_env(dev_session)
    document = env["ECOSIGN_DEV_DOCUMENT"]
    args = ["submit", "--document", document, "--protect", "--tsa", "--bitcoin", "--wait"]
    waited = _run(dev_session, *args, "--json", env=env, timeout=120)
    assert waited.returncode == 0, waited.stderr
    result = json.loads(waited.stdout)  # the whole output is one JSON document
    assert result["created"] is True and result["job"]["status"] == "completed"
    assert result["events"][-1]["type"] == "job_completed"
    steps = {s["name"]: s["status"] for s in result["job"]["steps"]}
    assert steps["anchor_bitcoin"] == "succeeded"
    short = result["job"]["id"][-12:]

    shown = _run(
        dev_session, "--api-url", env["ECOSIGN_DEV_API"], "status", short, "--json", env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == result["job"]["id"]

    new_doc = _run(dev_session, "sandbox", "new-document", env=env)
    assert new_doc.returncode == 0, new_doc.stderr
    quiet = _run(
        dev_session, "submit", "--document", new_doc.stdout.strip(), "--nda", "-q", env=env
    )
    assert quiet.returncode == 0 and len(quiet.stdout.strip()) == 36, quiet.stdout + quiet.stderr

    # A job due in an hour stays queued: cancel and retry are deterministic on it.
    args = ["jobs", "enqueue", "demo.noop", "--delay", "3600", "--json"]
    delayed = json.loads(_run(dev_session, *args, env=env).stdout)["job"]["id"]
    cancelled = _run(dev_session, "cancel", delayed[-10:], "--json", env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    retried = _run(dev_session, "jobs", "retry", delayed[-10:], "--json", env=env)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["id"] == delayed
    assert json.loads(retried.stdout)["status"] == "queued"

    second = _run(dev_session, "dev", "--background", "--port", "0", "--sandbox-port", "0")
    assert second.returncode == 2 and "already running" in second.stderr


def test_version_and_every_command_has_an_example_and_named_metavars() -> None:
    version = _run(ROOT, "--version")
    assert version.returncode == 0 and version.stdout.startswith("ecosign-orchestrator 0.")
    register_commands()
    runner = CliRunner()
    checked = 0
    for path, command in _walk(typer.main.get_command(app), ()):
        if hasattr(command, "commands"):
            continue  # a group: its commands are checked
        result = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        assert "Example:" in result.output, path
        options = result.output.split("Options:")[1].split("Example:")[0]
        assert "<bool>" not in options and "<str>" not in options, (path, options)
        checked += 1
    assert checked >= 20


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


@pytest.mark.parametrize(
    ("setup", "args", "code", "says"),
    [
        (
            {"ECOSIGN_ORCH_CONFIG": "{dir}/missing.toml"},
            ["jobs", "list"],
            2,
            "ECOSIGN_ORCH_CONFIG names",
        ),
        ({"ECOSIGN_ORCH_CONFIG": "{dir}/bad.toml"}, ["jobs", "list"], 2, "invalid TOML"),
        (
            {"ECOSIGN_ORCH_DATABASE_URL": "sqlite:///{dir}/file.txt/sub/jobs.db"},
            ["jobs", "list"],
            2,
            "cannot create the folder of the SQLite database",
        ),
        (
            {"ECOSIGN_ORCH_DATABASE_URL": "postgresql://u:pw@127.0.0.1:{closed}/x"},
            ["jobs", "list"],
            3,
            "Connection refused",
        ),
        ({}, ["--api-url", "http://127.0.0.1:{closed}", "jobs", "list"], 3, "unreachable"),
        ({}, ["status", "0123456789ab"], 2, "searched {dir}/.ecosign-orchestrator/jobs.db"),
        ({"ECOSIGN_ORCH_CONFIRMATION_SCALE": "1/0"}, ["config", "show"], 2, "fraction"),
        # configuration never replaces a flow's identity fields (issue 19 §2)
        (
            {"ECOSIGN_ORCH_STEP_BODY": '{{"anchor_polygon": {{"anchor_stage": "final"}}}}'},
            ["worker", "--burst"],
            2,
            "step_body.anchor_polygon.anchor_stage: set by the orchestrator itself",
        ),
        (
            {"ECOSIGN_ORCH_STEP_BODY": '{{"append_tsa": {{"step_index": 3}}}}'},
            ["serve"],
            2,
            "step_body.append_tsa.step_index: set by the orchestrator itself",
        ),
        (
            {"ECOSIGN_ORCH_STEP_BODY": '{{"build_artifact": {{"correlation_id": "x"}}}}'},
            ["config", "show"],
            2,
            "step_body.build_artifact.correlation_id: set by the orchestrator itself",
        ),
    ],
)
def test_errors_are_one_line_naming_the_cause_with_exit_2_or_3(
    tmp_path: Path, setup: dict[str, str], args: list[str], code: int, says: str
) -> None:
    (tmp_path / "bad.toml").write_text("x = [")
    (tmp_path / "file.txt").write_text("not a folder")
    closed = _closed_port()
    values = {"dir": str(tmp_path), "closed": str(closed)}
    env = _clean_env(**{k: v.format(**values) for k, v in setup.items()})
    result = _run(tmp_path, *[a.format(**values) for a in args], env=env)
    assert result.returncode == code, result.stdout + result.stderr
    assert says.format(**values) in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1


def test_serve_on_a_port_in_use_says_so_before_claiming_to_serve(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = cli_env(f"sqlite:///{tmp_path}/jobs.db")
        result = _run(tmp_path, "serve", "--port", str(port), env=env)
    assert result.returncode == 3
    assert "Address already in use" in result.stderr and "serving on" not in result.stdout


def test_app_modules_are_found_in_the_current_folder_and_burst_drains(tmp_path: Path) -> None:
    (tmp_path / "myjobs.py").write_text(
        "from ecosign_orchestrator.core import JobContext, Registry\n"
        "registry = Registry()\n"
        "@registry.processor('thumbnails.make')\n"
        "async def make(ctx: JobContext) -> dict:\n"
        "    return {'width': ctx.payload['width']}\n"
    )
    env = _clean_env()
    for width in (320, 640):
        payload = json.dumps({"width": width})
        queued = _run(
            tmp_path, "--app", "myjobs:registry", "jobs", "enqueue", "thumbnails.make",
            "--payload", payload, env=env,
        )  # fmt: skip
        assert queued.returncode == 0, queued.stderr
    drained = _run(tmp_path, "--app", "myjobs:registry", "worker", "--burst", env=env)
    assert drained.returncode == 0, drained.stderr
    listed = json.loads(_run(tmp_path, "jobs", "list", "--json", env=env).stdout)["jobs"]
    assert sorted(j["result"]["width"] for j in listed) == [320, 640]
    assert {j["status"] for j in listed} == {"completed"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
