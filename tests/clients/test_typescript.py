"""The TypeScript client (clients/typescript): its types are what the API's OpenAPI document
says (regenerated and compared), it builds under TypeScript strict, and its tests run with Node's
own test runner, then a smoke test under Deno (Supabase Edge Functions' runtime), both against a
real ``serve`` process and the sandbox started here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci
from tests.support.api import serve_process
from tests.support.flows import SANDBOX_KEY
from tests.support.procs import ROOT, cli_env

CLIENT = ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"
TOKEN = "ts-client-token-5d1e99c2"


def _tools() -> None:
    """Node and the client's packages (make test runs npm ci), or a clear failure in CI."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (BIN / "tsc").exists():
        missing.append("clients/typescript/node_modules (cd clients/typescript && npm ci)")
    if missing:
        if in_ci():
            pytest.fail(f"the TypeScript client's tests need {', '.join(missing)}")
        pytest.skip(f"missing {', '.join(missing)}")


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    result = subprocess.run(
        args, cwd=CLIENT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (args, result.stdout[-4000:], result.stderr[-4000:])
    return result.stdout


def test_the_generated_types_are_the_apis_openapi_document(tmp_path: Path) -> None:
    _tools()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ECOSIGN_ORCH_")}
    dump = (
        "import json; from ecosign_orchestrator.service.api.app import create_app; "
        "from ecosign_orchestrator.service.settings import Settings; "
        "print(json.dumps(create_app(Settings(), embedded_worker=False).openapi()))"
    )
    document = subprocess.run(
        [sys.executable, "-c", dump], env=clean, capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "openapi.json").write_text(document)
    generated = tmp_path / "schema.ts"
    _run(
        [
            str(BIN / "openapi-typescript"),
            str(tmp_path / "openapi.json"),
            "--default-non-nullable",
            "false",
            "-o",
            str(generated),
        ]
    )
    committed = (CLIENT / "src" / "schema.ts").read_text()
    assert generated.read_text() == committed, (
        "clients/typescript/src/schema.ts is not the API's OpenAPI document: regenerate it "
        "(OPENAPI=<openapi.json> npm run generate)"
    )
    assert '"DocumentJob"' in json.dumps(json.loads(document)["components"]["schemas"])


@pytest.fixture
def served(sandbox_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_API_TOKENS": f"ts-client:{TOKEN}",
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
        },
    )
    with serve_process(env, tmp_path / "serve.log") as url:
        yield {
            "ORCH_URL": url,
            "ORCH_TOKEN": TOKEN,
            "SANDBOX_URL": sandbox_url,
            "SANDBOX_KEY": SANDBOX_KEY,
        }


def test_node_and_deno_run_the_client_against_a_real_server(
    served: dict[str, str], tmp_path: Path
) -> None:
    _tools()
    env: dict[str, Any] = {**os.environ, **served, "DENO_DIR": str(tmp_path / "deno")}
    _run(["npm", "run", "--silent", "build"], env=env)
    _run([str(BIN / "tsc"), "-p", "tsconfig.test.json"], env=env)
    node = _run(["node", "--test", "--test-reporter=spec", "dist-test/test/"], env=env)
    assert "fail 0" in node and "pass 6" in node, node

    deno = _run(
        [str(BIN / "deno"), "run", "--no-lock", "--allow-net", "--allow-env", "test/deno_smoke.ts"],
        env=env,
    )
    result = json.loads(deno.strip().splitlines()[-1])
    assert result["status"] == "completed" and result["refused"] == "actions", deno
    assert result["runtime"].startswith("deno 2")
