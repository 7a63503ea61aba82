"""What an operator sees in a dev session: a flow waiting for Bitcoin says so everywhere, a failed
one is explained, and every table command reads at 80 and 120 columns (issue 22 §1, §2, §6)."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.dev import dev_env, dev_running, run_cli
from tests.support.procs import eventually

WIDTHS = (80, 120)
#: A word up to this long always fits a wrapping column whole (the narrowest is 20 wide).
WHOLE = 19


def _cli(folder: Path, env: dict[str, str], *args: str, width: int = 120) -> str:
    result = run_cli(folder, *args, env={**env, "COLUMNS": str(width)})
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _assert_fits(output: str, width: int, words: list[str], what: str) -> None:
    """Every line within ``width``; every short word of ``words`` whole on one line."""
    lines = output.splitlines()
    too_wide = [line for line in lines if len(line.rstrip()) > width]
    assert not too_wide, (what, width, too_wide)
    tokens = {t.strip(",.;:()") for line in lines for t in line.split()}
    broken = [w for w in words if len(w) <= WHOLE and w.strip(",.;:()") not in tokens]
    assert not broken, (what, width, broken, output)


def _words(*texts: str) -> list[str]:
    return [w for text in texts for w in text.split()]


def _shown_ids(output: str) -> set[str]:
    return set(re.findall(r"\b[0-9a-f]{12}\b", output))


async def _api(env: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=env["ECOSIGN_DEV_API"],
        headers={"Authorization": f"Bearer {env['ECOSIGN_ORCH_API_TOKEN']}"},
        timeout=10,
    )


#: Bitcoin checked every 0.3 s (180 s scaled by dev's 1/600), given up after 7 minutes.
BITCOIN = json.dumps({"bitcoin": {"schedule_seconds": [180], "deadline_seconds": 259_200}})


def test_a_flow_waiting_for_bitcoin_is_waiting_everywhere_and_tables_fit(tmp_path: Path) -> None:
    with dev_running(tmp_path, ECOSIGN_ORCH_CONFIRMATIONS=BITCOIN) as folder:
        _waiting_everywhere_and_tables_fit(folder)


def _waiting_everywhere_and_tables_fit(folder: Path) -> None:
    started = (folder / "started.txt").read_text()
    env = dev_env(folder)
    # dev --background printed what the README then refers to
    for shown in (env["ECOSIGN_DEV_API"], env["ECOSIGN_ORCH_API_TOKEN"], "/ui", "sandbox faults"):
        assert shown in started, (shown, started)

    # Bitcoin never confirms on its own: the flow waits (sandbox timing, issue 22 §6).
    assert "never" in _cli(folder, env, "sandbox", "timing", "--bitcoin", "never")
    document = env["ECOSIGN_DEV_DOCUMENT"]
    flow = asyncio.run(_submit(env, document, tsa=True, bitcoin=True))
    # A failed flow beside it: build-artifact refuses (sandbox faults).
    faults = ["sandbox", "faults", "build-artifact", "--fail-next", "1", "--status", "400"]
    assert "build-artifact" in _cli(folder, env, *faults)
    other = asyncio.run(_new_document(env))
    failed = asyncio.run(_submit(env, other))

    reason = asyncio.run(_reach_states(env, flow, failed))
    # What each table command must show whole, at both widths. They run side by side, and
    # beside the ten checks the flow makes meanwhile (they read; the checks write).
    commands = {
        ("jobs", "list"): _words("waits for confirmation of the bitcoin anchor"),
        ("status", flow[-12:]): _words("confirmation of the bitcoin anchor"),
        ("status", failed[-12:]): _words(reason),
        ("events", failed[-12:]): _words(reason),
        ("calls", failed[-12:]): ["build-artifact", "400"],
        ("jobs", "failures"): _words(reason),
    }
    with ThreadPoolExecutor(3) as pool:
        polls = pool.submit(asyncio.run, _ten_checks_add_at_most_ten_events(env, flow))
        runs = {
            (command, width): pool.submit(_while_checking, folder, env, command, width)
            for command in commands
            for width in WIDTHS
        }
        outputs = {key: run.result() for key, run in runs.items()}
        polls.result()

    shown_ids: set[str] = set()
    for (command, width), out in outputs.items():
        _assert_fits(out, width, commands[command], " ".join(command))
        shown_ids |= _shown_ids(out)
    for width in WIDTHS:
        listed = outputs[(("jobs", "list"), width)]
        assert "waiting" in listed and "0/54" not in listed, listed
        assert {flow[-12:], failed[-12:]} <= _shown_ids(listed), listed
        status = outputs[(("status", flow[-12:]), width)]
        for label in ("waiting for", "next check", "gives up"):
            assert label in status, status
        assert "lease" not in status and "0 of 54" not in status  # no empty or engine rows
        events = outputs[(("events", failed[-12:]), width)]
        assert "{" not in events and "'" not in events, events  # words, not Python dicts

    # Every id a table showed resolves to its job (the lookup every command and route uses).
    asyncio.run(_resolve(env, shown_ids - {document[-12:], other[-12:]}))
    too_short = run_cli(folder, "status", flow[-7:], env=env)
    assert too_short.returncode == 2 and "give 8 or more" in too_short.stderr

    # The operator confirms the anchor by hand: the flow completes.
    assert "confirmed" in _cli(folder, env, "sandbox", "confirm", document, "--network", "bitcoin")
    asyncio.run(_wait_status(env, flow, "completed"))


def _while_checking(folder: Path, env: dict[str, str], command: tuple[str, ...], width: int) -> str:
    """The command's output at a moment the waiting flow is not in one of its checks (for the
    few milliseconds of a check it is ``running``, as it should be)."""
    for _ in range(10):
        out = _cli(folder, env, *command, width=width)
        if command[0] not in ("jobs", "status") or not re.search(r"\brunning\b", out):
            return out
    raise AssertionError(f"{command} found the flow running ten times in a row")


async def _wait_status(env: dict[str, str], flow: str, status: str) -> dict[str, Any]:
    async with await _api(env) as api:
        found: dict[str, Any] = {}

        async def reached() -> bool:
            found.update((await api.get(f"/v1/jobs/{flow}")).json())
            return found.get("status") == status

        await eventually(reached, timeout=60, what=f"{flow} {status}")
        return found


async def _submit(env: dict[str, str], document: str, **forensic: bool) -> str:
    body = {"document_entity_id": document, "actions": {"protect": True}, "forensic": forensic}
    async with await _api(env) as api:
        answer = await api.post("/v1/document-jobs", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


async def _new_document(env: dict[str, str]) -> str:
    key = {"Authorization": f"Bearer {env['ECOSIGN_ORCH_SERVICE_KEY']}"}
    async with httpx.AsyncClient(base_url=env["EDGE_BASE_URL"], headers=key) as admin:
        return str((await admin.post("/admin/documents", json={})).json()["id"])


async def _resolve(env: dict[str, str], shorts: set[str]) -> None:
    async with await _api(env) as api:
        for short in shorts:
            found = await api.get(f"/v1/jobs/{short}")
            assert found.status_code == 200 and found.json()["id"].endswith(short), short


async def _reach_states(env: dict[str, str], flow: str, failed: str) -> str:
    """Both flows where the test wants them; the failed one's reason."""
    reason = str((await _wait_status(env, failed, "failed"))["last_error"]["message"])
    job = await _wait_status(env, flow, "waiting")
    waiting = job["waiting"]
    assert "bitcoin" in waiting["reason"] and waiting["deadline"] and job["run_at"]
    async with await _api(env) as api:
        overview: dict[str, Any] = {}

        async def between_checks() -> bool:
            """Every snapshot counts the flow once, never as queued; for the few milliseconds
            of a check it is ``running``, so the test waits for a snapshot between checks."""
            overview.update((await api.get("/v1/overview")).json())
            statuses = overview["statuses"]
            assert statuses["waiting"] + statuses["running"] == 1, overview
            assert statuses["queued"] == 0 and overview["queue_depth"] == 0, overview
            return bool(statuses["waiting"] == 1)

        await eventually(between_checks, timeout=10, interval=0.01, what="the flow between checks")
        assert overview["waiting"][0]["count"] == 1
        assert "bitcoin" in overview["waiting"][0]["reason"]
    return reason


def _polls(job: dict[str, Any]) -> int:
    step = next(s for s in job["steps"] if s["name"] == "anchor_bitcoin")
    return int(step["data"]["polls"])


async def _ten_checks_add_at_most_ten_events(env: dict[str, str], flow: str) -> None:
    async with await _api(env) as api:
        job = (await api.get(f"/v1/jobs/{flow}")).json()
        before = len((await api.get(f"/v1/jobs/{flow}/events")).json())

        async def ten_more() -> bool:
            return _polls((await api.get(f"/v1/jobs/{flow}")).json()) >= _polls(job) + 10

        await eventually(ten_more, timeout=120, interval=0.2, what="ten more bitcoin checks")
        after = (await api.get(f"/v1/jobs/{flow}/events")).json()
        assert len(after) - before <= 10, [e["type"] for e in after[before:]]
        again: dict[str, Any] = {}

        async def waiting_again() -> bool:
            """Between two checks the flow is waiting (during one, running; nothing else)."""
            again.update((await api.get(f"/v1/jobs/{flow}")).json())
            assert again["status"] in ("waiting", "running"), again["status"]
            return bool(again["status"] == "waiting")

        await eventually(waiting_again, timeout=10, interval=0.01, what="the flow between checks")
        assert again["waiting"]["since"] == job["waiting"]["since"]
