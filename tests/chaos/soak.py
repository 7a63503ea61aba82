"""``make soak``: steady document flows with Edge faults for a long while (20 minutes by default)
on PostgreSQL, with a short retention; prints how memory, the database and the event log evolve
and fails unless they stay flat once retention applies.

    python -m tests.chaos.soak [--minutes 20] [--rate 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from pathlib import Path

import httpx
import psycopg

from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.service.wiring import document_migrations
from tests.chaos.run import (
    INTENTS,
    TOKEN,
    Tally,
    _env,
    _faults,
    _free_port,
    _process,
    _wait_http,
    sandbox_command,
)
from tests.support.flows import SandboxAdmin
from tests.support.pgcluster import start_cluster
from tests.support.procs import ROOT

#: Finished flows are kept this long, so the database reaches its steady size early in the run.
RETENTION = "120s"


async def _sample(database_url: str) -> tuple[int, int, int, int]:
    """Database size (bytes), jobs, events, active jobs."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        size = await (await conn.execute("SELECT pg_database_size(current_database())")).fetchone()
        jobs = await (await conn.execute("SELECT count(*) FROM orchestrator.jobs")).fetchone()
        events = await (await conn.execute("SELECT count(*) FROM orchestrator.events")).fetchone()
        active_sql = "SELECT count(*) FROM orchestrator.jobs WHERE status <> ALL(%s)"
        terminal = ["completed", "failed", "cancelled"]
        active = await (await conn.execute(active_sql, (terminal,))).fetchone()
    assert size and jobs and events and active
    return int(size[0]), int(jobs[0]), int(events[0]), int(active[0])


async def soak(args: argparse.Namespace) -> int:
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    logs = Path(args.out)
    logs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    tally = Tally()
    cluster = start_cluster()
    try:
        database_url = cluster.create_database("soak")
        async with PostgresRepository(database_url, migrations=document_migrations()) as repo:
            await repo.migrate()
        sandbox_port, api_port = _free_port(), _free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env = _env(database_url, sandbox_url)
        env.update(
            {
                "ECOSIGN_ORCH_RETENTION_COMPLETED": RETENTION,
                "ECOSIGN_ORCH_RETENTION_FAILED": RETENTION,
                "ECOSIGN_ORCH_RETENTION_INTERVAL_SECONDS": "20",
            }
        )
        sandbox_args = sandbox_command(sandbox_port)
        worker = ["worker", "--kind", "ecosign.document", "--concurrency", "25"]
        with contextlib.ExitStack() as stack:
            sandbox = stack.enter_context(_process(sandbox_args, env, logs / "sandbox.log"))
            api_args = ["serve", "--no-worker", "--port", str(api_port)]
            api_proc = stack.enter_context(_process(api_args, env, logs / "api.log"))
            workers = [
                stack.enter_context(_process(worker, env, logs / f"worker{i}.log"))
                for i in range(2)
            ]
            await _wait_http(sandbox_url, "/healthz")
            api_url = f"http://127.0.0.1:{api_port}"
            await _wait_http(api_url, "/healthz")
            admin = SandboxAdmin(sandbox_url)
            await admin.set_faults(_faults([]))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            samples: list[tuple[float, int, int, int, int, dict[str, int]]] = []
            submitted = 0
            began = time.monotonic()
            async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as api:
                next_sample = began
                while (elapsed := time.monotonic() - began) < args.minutes * 60:
                    doc = await admin.create_document()
                    actions, forensic = INTENTS[submitted % len(INTENTS)]
                    body = {"document_entity_id": doc, "actions": actions, "forensic": forensic}
                    answer = await api.post("/v1/document-jobs", json=body)
                    tally.api_answers[answer.status_code] += 1
                    submitted += 1
                    if time.monotonic() >= next_sample:
                        tally.peak_rss.clear()
                        for role, proc in [("api", api_proc), ("sandbox", sandbox)] + [
                            (f"worker{i}", w) for i, w in enumerate(workers)
                        ]:
                            tally.rss(role, proc.pid)
                        size, jobs, events, active = await _sample(database_url)
                        samples.append((elapsed, size, jobs, events, active, dict(tally.peak_rss)))
                        print(_line(samples[-1]), flush=True)
                        next_sample += args.sample_seconds
                    await asyncio.sleep(rng.expovariate(args.rate))  # Poisson arrivals
            await admin.aclose()
    finally:
        cluster.destroy()
    return _verdict(samples, submitted, tally)


def _line(sample: tuple[float, int, int, int, int, dict[str, int]]) -> str:
    elapsed, size, jobs, events, active, rss = sample
    memory = " ".join(f"{k}={v // 1024}" for k, v in sorted(rss.items()))
    return (
        f"{elapsed / 60:5.1f} min  db {size / 2**20:6.1f} MiB  jobs {jobs:6d}  events {events:7d}"
        f"  active {active:4d}  RSS MiB {memory}"
    )


def _verdict(
    samples: list[tuple[float, int, int, int, int, dict[str, int]]], submitted: int, tally: Tally
) -> int:
    """Flat: the last third's peaks within 15 % of the middle third's (retention has applied by
    then), for database size, jobs, events and the RSS of the API and the workers."""
    third = len(samples) // 3
    middle, last = samples[third : 2 * third], samples[2 * third :]
    print(f"\nsoak: {submitted} flows submitted; API answers {dict(tally.api_answers)}")
    if not middle or not last:
        print("soak: too short to judge flatness")
        return 1
    measures = {
        "database size": lambda s: s[1],
        "jobs": lambda s: s[2],
        "events": lambda s: s[3],
        # the sandbox keeps every call in its ledger by design: reported, not judged
        **{
            f"RSS {role}": (lambda s, r=role: s[5].get(r, 0))
            for role in samples[-1][5]
            if role != "sandbox"
        },
    }
    grown = []
    for name, value in measures.items():
        before, after = max(map(value, middle)), max(map(value, last))
        ratio = after / before if before else 1.0
        print(
            f"  {name:<16} peak in the middle third {before:>12,}, in the last {after:>12,}"
            f"  x{ratio:.2f}"
        )
        if ratio > 1.15:
            grown.append(name)
    if tally.api_answers.get(500):
        grown.append("API 500 answers")
    if grown:
        print(f"SOAK: NOT FLAT: {', '.join(grown)}")
        return 1
    print("soak: flat")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=3.0, help="flows per second (mean)")
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / ".chaos" / "soak"))
    sys.exit(asyncio.run(soak(parser.parse_args())))


if __name__ == "__main__":
    main()
