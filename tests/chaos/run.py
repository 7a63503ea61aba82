"""``make chaos``: document flows on PostgreSQL through worker SIGKILLs, database restarts,
network partitions, Edge faults, hostile input and floods; prints one table and exits non-zero
if a guarantee broke.

Everything is a real process on loopback: a throwaway PostgreSQL cluster, the sandbox (Edge
Functions + REST), the API (``serve --no-worker``) and worker processes. A TCP proxy the run
controls sits between one worker and PostgreSQL and between every worker and the sandbox.

    python -m tests.chaos.run [--flows 1000] [--workers 4] [--seed 7]

The guarantees checked: no submitted flow lost; none left non-terminal; only the flows made to
fail fatally end failed (with the reason); no Edge effect applied twice (the sandbox's ledger);
no job started again while the worker running it was alive and connected (every lease
recovery traced to a killed or partitioned worker); no 500 from the API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.ecosign.steps import Step
from ecosign_orchestrator.service.wiring import document_migrations
from tests.chaos import floods, frozen, hostile
from tests.support.flows import SANDBOX_KEY, SandboxAdmin
from tests.support.pgcluster import PostgresCluster, start_cluster
from tests.support.procs import ROOT, start_cli
from tests.support.proxy import Proxy

TOKEN = "chaos-run-write-token-7c1d9e2f4a6b"
LEASE_SECONDS = 10
FAULT_STATUSES = [500, 503, 504, 546, 429, 204]
FATAL_SHARE = 0.02
INTENTS = [
    ({"protect": True}, {"tsa": True, "polygon": True, "bitcoin": True}),
    ({"sign_owner": True}, {"tsa": True}),
    ({"nda": True}, {}),
    ({"sign_workflow": True}, {"polygon": True}),
]


@dataclass
class Tally:
    """What the run did and saw."""

    kills: int = 0
    revived: int = 0
    pg_restarts: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    #: When each worker process was killed, and when its store link was cut.
    killed_at: dict[int, datetime] = field(default_factory=dict)
    partitioned_at: dict[int, datetime] = field(default_factory=dict)
    api_answers: Counter[int] = field(default_factory=Counter)
    peak_rss: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rss(self, role: str, pid: int) -> None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib = int(line.split()[1])
                    self.peak_rss[role] = max(self.peak_rss.get(role, 0), kib)


class Fleet:
    """The worker processes, restartable; worker 0 reaches PostgreSQL through a proxy."""

    def __init__(self, env: dict[str, str], pg_proxy_env: dict[str, str], logs: Path, n: int):
        self.env = env
        self.pg_proxy_env = pg_proxy_env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = [self._start(i) for i in range(n)]

    def _start(self, i: int) -> subprocess.Popen[bytes]:
        env = self.pg_proxy_env if i == 0 else self.env
        log = self.logs / f"worker{i}.log"
        return start_cli(
            env, "worker", "--kind", "ecosign.document", "--concurrency", "25", log=log
        )

    def kill_and_restart(self, i: int) -> int | None:
        """SIGKILL worker ``i`` and start it again; its pid, or None if it was not running."""
        proc = self.procs[i]
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.procs[i] = self._start(i)
        return proc.pid if alive else None

    def revive(self) -> int:
        """Restart workers that exited by themselves (a worker that cannot reach the store at
        start-up exits 3, as under a supervisor); how many."""
        exited = [i for i, proc in enumerate(self.procs) if proc.poll() is not None]
        for i in exited:
            self.procs[i] = self._start(i)
        return len(exited)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def sandbox_command(port: int) -> list[str]:
    """``sandbox serve`` on ``port`` with anchors confirming in under a second."""
    return [
        *("sandbox", "serve", "--port", str(port), "--service-key", SANDBOX_KEY),
        *("--polygon-confirm", "0.3", "--bitcoin-confirm", "0.6"),
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(database_url: str, sandbox_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSIGN_ORCH_")}
    policy = {"max_attempts": 40, "base_seconds": 0.1, "cap_seconds": 2.0}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "ECOSIGN_ORCH_DATABASE_URL": database_url,
            "ECOSIGN_ORCH_LOG_FORMAT": "json",
            "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_EDGE_TIMEOUT_SCALE": "0.04",
            "ECOSIGN_ORCH_STEP_POLICIES": json.dumps({s.value: policy for s in Step}),
            "ECOSIGN_ORCH_LEASE_SECONDS": str(LEASE_SECONDS),
            "ECOSIGN_ORCH_RECOVERY_SECONDS": "0.5",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_API_TOKENS": TOKEN,
            # an answer left unread is cut after 5 s (30 by default): the reader floods are
            # shorter for it
            "ECOSIGN_ORCH_HTTP_SEND_TIMEOUT_SECONDS": "5",
        }
    )
    return env


def _faults(fatal_docs: list[str]) -> dict[str, Any]:
    faults: dict[str, Any] = {}
    for i, name in enumerate(
        [
            "store-encrypted-custody",
            "create-witness",
            "run-tsa",
            "submit-anchor-polygon",
            "submit-anchor-bitcoin",
            "notify-artifact-ready",
        ]
    ):
        faults[name] = {
            "rate": 0.30,
            "statuses": FAULT_STATUSES,
            "hang_rate": 0.05,
            "hang": 5.0,
            "retry_after": 0.5 if i % 2 else None,
        }
    # build-artifact fails fatally (400) for a few documents: those flows must end failed.
    faults["build-artifact"] = {"rate": 1.0, "statuses": [400], "documents": fatal_docs}
    return faults


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_cli(env, *args, log=log)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _wait_http(url: str, path: str, timeout: float = 60) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(path)).status_code < 500:
                        return
                await asyncio.sleep(0.1)


async def _submit_all(
    api: httpx.AsyncClient, docs: list[str], tally: Tally, seconds: float
) -> list[str]:
    """Submit one flow per document, paced over ``seconds`` so the load spans the chaos."""
    ids: list[str] = []
    gap = seconds / max(1, len(docs))
    for i, doc in enumerate(docs):
        actions, forensic = INTENTS[i % len(INTENTS)]
        body = {"document_entity_id": doc, "actions": actions, "forensic": forensic}
        for _ in range(200):  # the store may be restarting: 503 means retry later
            try:
                answer = await api.post(
                    "/v1/document-jobs", json=body, headers={"Idempotency-Key": f"chaos-{doc}"}
                )
            except httpx.HTTPError:
                tally.api_answers[0] += 1
                await asyncio.sleep(0.25)
                continue
            tally.api_answers[answer.status_code] += 1
            if answer.status_code in (200, 201):
                ids.append(answer.json()["id"])
                break
            await asyncio.sleep(0.25)
        else:
            raise RuntimeError(f"could not submit a flow for {doc}")
        await asyncio.sleep(gap)
    return ids


class Disruptions:
    """PostgreSQL restarts and partitions on a schedule (seconds from the start of the load)."""

    SCHEDULE = (
        (15.0, "pg_fast"),
        (35.0, "partition_pg"),
        (75.0, "pg_immediate"),
        (95.0, "partition_edge"),
        (130.0, "pg_fast"),
    )

    def __init__(
        self,
        cluster: PostgresCluster,
        database_url: str,
        fleet: Fleet,
        pg: Proxy,
        edge: Proxy,
        tally: Tally,
    ) -> None:
        self.cluster, self.fleet, self.pg, self.edge, self.tally = cluster, fleet, pg, edge, tally
        self.database_url = database_url
        self.pending = list(self.SCHEDULE)
        self.heal_at: dict[str, float] = {}
        self.started = time.monotonic()

    @property
    def spare_worker0(self) -> bool:
        """Worker 0 is not killed while cut off, nor in the 10 s before (it must hold jobs)."""
        if "pg" in self.heal_at:
            return True
        if not self.pending or self.pending[0][1] != "partition_pg":
            return False
        return time.monotonic() - self.started >= self.pending[0][0] - 10

    async def _worker0_holds_jobs(self) -> bool:
        """Whether worker 0 is running jobs now (else cutting it off proves nothing)."""
        pattern = f"%-{self.fleet.procs[0].pid}-%"
        query = "SELECT count(*) FROM orchestrator.jobs WHERE status = 'running'"
        query += " AND lease_owner LIKE %s"
        with contextlib.suppress(psycopg.Error):
            async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
                row = await (await conn.execute(query, (pattern,))).fetchone()
                return row is not None and row[0] > 0
        return False

    async def tick(self) -> None:
        now = time.monotonic()
        for name, at in list(self.heal_at.items()):
            if now >= at:
                (self.pg if name == "pg" else self.edge).heal()
                del self.heal_at[name]
        if not self.pending or now - self.started < self.pending[0][0]:
            return
        if self.pending[0][1] == "partition_pg" and not await self._worker0_holds_jobs():
            return  # postponed to the next tick
        _, what = self.pending.pop(0)
        if what.startswith("pg_"):
            mode = what.removeprefix("pg_")
            await asyncio.to_thread(self.cluster.stop, mode)
            await asyncio.sleep(1.0)  # the outage itself
            await asyncio.to_thread(self.cluster.start)
            self.tally.pg_restarts.append(mode)
        elif what == "partition_pg":
            # longer than a lease: the worker's outcomes must be refused, others take over
            self.tally.partitioned_at[self.fleet.procs[0].pid] = datetime.now(UTC)
            self.pg.partition()
            self.heal_at["pg"] = now + LEASE_SECONDS * 2.5
            self.tally.partitions.append(f"worker 0 <-> PostgreSQL, {LEASE_SECONDS * 2.5:.0f} s")
        else:
            self.edge.partition()
            self.heal_at["edge"] = now + 20
            self.tally.partitions.append("workers <-> Edge Functions, 20 s")

    def heal_all(self) -> None:
        self.pg.heal()
        self.edge.heal()
        self.heal_at.clear()


async def _chaos(
    disruptions: Disruptions,
    fleet: Fleet,
    tally: Tally,
    rng: random.Random,
    done: asyncio.Event,
    kills_wanted: int,
) -> None:
    """Kill a random worker on a cadence while the disruptions play out."""
    while not done.is_set():
        await disruptions.tick()
        tally.revived += fleet.revive()
        # the cut-off worker is left alone: its partition is the experiment
        choices = [i for i in range(len(fleet.procs)) if not (disruptions.spare_worker0 and i == 0)]
        killed = fleet.kill_and_restart(rng.choice(choices))
        if killed is not None:
            tally.killed_at[killed] = datetime.now(UTC)
            tally.kills += 1
        for i, proc in enumerate(fleet.procs):
            tally.rss(f"worker{i}", proc.pid)
        await asyncio.sleep(rng.uniform(0.8, 1.6))  # chaos cadence, not synchronisation
    disruptions.heal_all()
    if tally.kills < kills_wanted:
        tally.notes.append(f"{tally.kills} kills before the flows ended ({kills_wanted} wanted)")


def _pid(worker_id: str) -> int:
    """Worker ids are ``host-pid-suffix``."""
    return int(worker_id.rsplit("-", 2)[1])


async def _audit(repo: PostgresRepository, ids: list[str], tally: Tally) -> dict[str, Any]:
    from ecosign_orchestrator.core.types import JobId

    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    lost = 0
    recoveries: Counter[str] = Counter()
    for job_id in ids:
        try:
            job = await repo.get(JobId(job_id))
        except Exception:
            lost += 1
            continue
        statuses[job.status.value] += 1
        if job.last_error is not None and job.status.value == "failed":
            reasons[f"{job.last_error.type}: {job.last_error.message[:60]}"] += 1
        for event in await repo.events(job_id=JobId(job_id), limit=10_000):
            if event.data.get("reason") != "lease_expired":
                continue
            # a recovery is explained only by a kill or a cut that happened before it
            pid = _pid(str(event.data.get("worker", "x-0-x")))
            if pid in tally.killed_at and event.at >= tally.killed_at[pid]:
                recoveries["killed worker"] += 1
            elif pid in tally.partitioned_at and event.at >= tally.partitioned_at[pid]:
                recoveries["partitioned worker"] += 1
            else:
                recoveries["worker alive and connected"] += 1
    return {"statuses": statuses, "reasons": reasons, "lost": lost, "recoveries": recoveries}


async def run(args: argparse.Namespace) -> int:
    # The run's own store connections see every restart; their reconnect chatter is expected.
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    rng = random.Random(args.seed)
    logs = Path(args.out)
    logs.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    began = time.monotonic()
    cluster = start_cluster()
    try:
        database_url = cluster.create_database("chaos")
        async with PostgresRepository(database_url, migrations=document_migrations()) as repo:
            await repo.migrate()
        sandbox_port, api_port = _free_port(), _free_port()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        edge_proxy = await Proxy(sandbox_port, reset_rate=0.02, seed=args.seed).start()
        pg_proxy = await Proxy(cluster.port, seed=args.seed).start()
        edge_url = f"http://127.0.0.1:{edge_proxy.port}"
        env = _env(database_url, edge_url)
        proxied_db = database_url.replace(f":{cluster.port}/", f":{pg_proxy.port}/")
        sandbox_args = sandbox_command(sandbox_port)
        serve_args = ["serve", "--no-worker", "--port", str(api_port)]
        with (
            _process(sandbox_args, env, logs / "sandbox.log") as sandbox,
            _process(serve_args, env, logs / "api.log") as api_proc,
        ):
            await _wait_http(sandbox_url, "/healthz")
            api_url = f"http://127.0.0.1:{api_port}"
            await _wait_http(api_url, "/healthz")
            admin = SandboxAdmin(sandbox_url)
            docs = [await admin.create_document() for _ in range(args.flows)]
            fatal = rng.sample(docs, max(1, int(len(docs) * FATAL_SHARE)))
            await admin.set_faults(_faults(fatal))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as api:
                by_api = await hostile.fuzz_api(api, examples=args.fuzz)
                by_cli = await asyncio.to_thread(hostile.fuzz_cli, env, logs)
                bad = {k: by_api[k] + by_cli[k] for k in by_api}
                fleet = Fleet(env, {**env, "ECOSIGN_ORCH_DATABASE_URL": proxied_db}, logs, 4)
                done = asyncio.Event()
                disruptions = Disruptions(cluster, database_url, fleet, pg_proxy, edge_proxy, tally)
                chaos = asyncio.create_task(
                    _chaos(disruptions, fleet, tally, rng, done, args.kills)
                )
                ids = await _submit_all(api, docs, tally, seconds=args.submit_seconds)
                async with PostgresRepository(database_url, max_size=2) as repo:
                    deadline = time.monotonic() + args.deadline
                    while time.monotonic() < deadline:
                        tally.rss("api", api_proc.pid)
                        tally.rss("sandbox", sandbox.pid)
                        with contextlib.suppress(Exception):  # the server may be restarting
                            counts = await repo.counts()
                            if all(s.is_terminal for (_, s), n in counts.items() if n):
                                break
                        await asyncio.sleep(1.0)  # a progress check, not synchronisation
                    done.set()
                    await chaos
                    flood = await hostile.flood(api, api_url, docs[: args.flood_docs], args.flood)
                    await _wait_all_terminal(repo, deadline=60)
                    fleet.stop()
                    audit = await _audit(repo, ids, tally)
                    flood_audit = await _audit(repo, flood.pop("ids"), tally)
                    http = {
                        "readers": await floods.reader_floods(
                            api_url, TOKEN, seconds=args.attack_seconds
                        ),
                        "descriptors": await floods.descriptor_flood(
                            env, sandbox_url, logs, TOKEN, admin, flows=20, seconds=180
                        ),
                        "frozen": await frozen.frozen_worker(env, logs, api, admin, flows=10),
                    }
            ledger = await admin.ledger()
            await admin.aclose()
        await edge_proxy.close()
        await pg_proxy.close()
    finally:
        cluster.destroy()
    return _report(
        args, tally, audit, flood_audit, flood, bad, ledger, fatal, began, edge_proxy, http
    )


async def _wait_all_terminal(repo: PostgresRepository, *, deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        counts = await repo.counts()
        if all(s.is_terminal for (_, s), n in counts.items() if n):
            return
        await asyncio.sleep(0.5)


def _report(
    args: argparse.Namespace,
    tally: Tally,
    audit: dict[str, Any],
    flood_audit: dict[str, Any],
    flood: dict[str, Any],
    bad: dict[str, int],
    ledger: dict[str, Any],
    fatal: list[str],
    began: float,
    edge_proxy: Proxy,
    http: dict[str, Any],
) -> int:
    statuses = audit["statuses"]
    twice = sum(1 for n in ledger["effects_by_key"].values() if n > 1)
    injected = Counter(
        str(call["status"]) for call in ledger["calls"] if call["status"] not in (200, 201)
    )
    stuck = sum(n for s, n in statuses.items() if s not in ("completed", "failed", "cancelled"))
    stuck += sum(n for s, n in flood_audit["statuses"].items() if s not in ("completed", "failed"))
    rows = [
        ("flows submitted", args.flows),
        ("completed", statuses.get("completed", 0)),
        ("failed as expected (fatal 400 on build-artifact)", statuses.get("failed", 0)),
        ("flows made to fail", len(fatal)),
        ("lost", audit["lost"] + flood_audit["lost"]),
        ("stuck non-terminal", stuck),
        ("Edge effects applied twice (sandbox ledger)", twice),
        ("lease recoveries: killed worker", audit["recoveries"]["killed worker"]),
        ("lease recoveries: partitioned worker", audit["recoveries"]["partitioned worker"]),
        (
            "duplicate starts while the worker lived",
            audit["recoveries"]["worker alive and connected"]
            + flood_audit["recoveries"]["worker alive and connected"],
        ),
        ("worker SIGKILLs", tally.kills),
        ("workers restarted after exiting at start-up (store down)", tally.revived),
        ("database restarts", ", ".join(tally.pg_restarts)),
        ("partitions", "; ".join(tally.partitions)),
        ("connection resets (proxy)", edge_proxy.resets),
        ("injected Edge faults by status", dict(sorted(injected.items()))),
        ("bad inputs tried (API, CLI)", f"{bad['api']}, {bad['cli']}"),
        ("bad inputs accepted or 5xx", bad["wrong"]),
        ("flood: submissions, accepted, refused 429/503", flood["summary"]),
        ("flood: /healthz max latency with 200 slow clients", f"{flood['healthz_max_ms']:.0f} ms"),
        ("API 500 answers", tally.api_answers.get(500, 0) + flood["server_errors"]),
        *floods.report_rows(http),
        ("peak RSS MiB", {k: round(v / 1024) for k, v in sorted(tally.peak_rss.items())}),
        ("wall time", f"{time.monotonic() - began:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nchaos run (seed {args.seed})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    failures_wrong = [r for r in audit["reasons"] if "400" not in r and "fatal" not in r.lower()]
    if failures_wrong:
        print("  unexpected failure reasons:", failures_wrong)
    for note in tally.notes:
        print("  note:", note)
    out = Path(args.out) / "chaos.json"
    out.write_text(json.dumps({name: value for name, value in rows}, default=str, indent=2))
    print(f"  (JSON: {out}; logs beside it)")
    broken = [
        audit["lost"] + flood_audit["lost"] != 0,
        stuck != 0,
        twice != 0,
        statuses.get("failed", 0) != len(fatal),
        audit["recoveries"]["worker alive and connected"] != 0,
        tally.api_answers.get(500, 0) + flood["server_errors"] != 0,
        bad["wrong"] != 0,
        *floods.broken(http),
    ]
    if any(broken):
        print("CHAOS: A GUARANTEE BROKE")
        return 1
    print("chaos: every guarantee held")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=100, help="worker SIGKILLs at least")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--submit-seconds", type=float, default=150.0)
    parser.add_argument("--deadline", type=float, default=420.0)
    parser.add_argument("--fuzz", type=int, default=400, help="hostile API inputs")
    parser.add_argument("--flood", type=int, default=10_000, help="submissions in a burst")
    parser.add_argument("--flood-docs", type=int, default=50)
    parser.add_argument(
        "--attack-seconds", type=float, default=15.0, help="each reader flood lasts this long"
    )
    parser.add_argument("--out", default=str(ROOT / ".chaos"))
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
