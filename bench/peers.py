"""``make bench``: ecosign-orchestrator against PgQueuer, Procrastinate and DBOS Transact.

Everything runs in one process tree on this machine against one throwaway PostgreSQL server with
the **server's default durability** (fsync, synchronous_commit and full_page_writes on). Each
measure is repeated (``--rounds``, alternating the order of the systems) and reported as
min/median/max, with the ratio of the medians to the peer. Output: a table on stdout, JSON
(``--json``) and a PNG plot (``--plot``); docs/benchmarks.md holds a recorded run.

Queues (no-op jobs): drain with 1 and 4 worker processes (workers started and idle, then one
batch of jobs committed; the clock runs from that commit to the last job's completion), one-by-one
enqueue, batch enqueue, and enqueue->start latency at a steady 200 jobs/s.

Flows (7 steps): ours over real HTTP to the sandbox (encrypt, witness, TSA, Polygon, Bitcoin,
artifact, notify) against DBOS workflows of 7 steps that make no call at all; no-op steps, and
50 ms per step with 1,000 flows in flight; on PostgreSQL and on SQLite; then the flow measures
again with a second process keeping one core busy. Cost per flow from ``pg_stat_database``
deltas and the sandbox's ledger (Edge calls, state reads). Every goal is printed met or missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pgcluster import PostgresCluster, start_cluster  # noqa: E402

from bench import flow_peers  # noqa: E402
from bench.queue_peers import PEERS, Peer  # noqa: E402

Results = dict[str, list[float]]


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


@contextlib.contextmanager
def processes(commands: list[tuple[list[str], dict[str, str]]]) -> Iterator[None]:
    procs = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL) for cmd, env in commands
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def drain(peer: Peer, jobs: int, procs: int, concurrency: int = 16) -> float:
    """Jobs/s from the commit of one batch of ``jobs`` to the last completion, with ``procs``
    warm worker processes (``concurrency`` each; PgQueuer's default worker has no cap)."""
    await peer.reset()
    with processes([peer.worker_command(concurrency) for _ in range(procs)]):
        await peer.enqueue_batch(procs)  # warm-up: every worker connected and idle
        await until(lambda: _at_least(peer, procs), 60, f"{peer.name} warm-up")
        base = await peer.done()
        started = time.perf_counter()
        await peer.enqueue_batch(jobs)
        await _count_up_to(peer, base, jobs, started, timeout=300)
        return jobs / (time.perf_counter() - started)


async def _count_up_to(peer: Peer, base: int, jobs: int, started: float, timeout: float) -> None:
    """Until ``jobs`` more than ``base`` are done. Counting finished jobs costs the server a
    scan that competes with the system measured (every 20 ms it took 15 % of a core), so the
    polls are spaced by the time the rest should take at the rate so far: a few polls, then
    every 20 ms near the end (the end is known within 20 ms, for every system alike)."""
    deadline = started + timeout
    while (done := await peer.done() - base) < jobs:
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"{peer.name} drain: {done} of {jobs}")
        rate = done / max(now - started, 1e-3)
        remaining = (jobs - done) / rate if rate > 0 else 0.5
        await asyncio.sleep(min(0.5, max(0.02, remaining / 2)))


async def _at_least(peer: Peer, n: int) -> bool:
    return await peer.done() >= n


async def enqueue_rate(peer: Peer, jobs: int, batch: bool) -> float:
    await peer.reset()
    started = time.perf_counter()
    if batch:
        size = min(1000, jobs)
        for _ in range(jobs // size):
            await peer.enqueue_batch(size)
    else:
        for _ in range(jobs):
            await peer.enqueue_one()
    return jobs / (time.perf_counter() - started)


async def latency(peer: Peer, rate: float, seconds: float) -> list[float]:
    """Enqueue->start seconds of each job submitted one by one at ``rate`` per second, one warm
    worker process."""
    await peer.reset()
    with processes([peer.worker_command(16)]):
        await peer.enqueue_one()
        await until(lambda: _at_least(peer, 1), 60, f"{peer.name} warm-up")
        total = int(rate * seconds)
        started = time.perf_counter()
        for i in range(total):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            await peer.enqueue_one()
        await until(lambda: _at_least(peer, total + 1), 60, f"{peer.name} latency")
    return sorted(await peer.latencies())[: total + 1]


async def queues(cluster: PostgresCluster, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    peers = [cls(cluster.create_database(f"bench_{cls.name}")) for cls in PEERS]
    for peer in peers:
        await peer.open()
    try:
        for round_no in range(args.rounds):
            order = peers if round_no % 2 == 0 else list(reversed(peers))
            for peer in order:
                print(f"  round {round_no + 1}: {peer.name}", flush=True)
                record = out.setdefault(peer.name, {})
                for procs in (1, 4):
                    rate = await drain(peer, args.jobs, procs)
                    record.setdefault(f"drain_x{procs}", []).append(rate)
                if peer.name == "ours":  # what the 16-slot cap costs a drain (not a goal row)
                    rate = await drain(peer, args.jobs, 1, concurrency=SLOTS_UNCAPPED)
                    record.setdefault("drain_x1_64", []).append(rate)
                one = await enqueue_rate(peer, args.enqueue, batch=False)
                record.setdefault("enqueue_one", []).append(one)
                many = await enqueue_rate(peer, args.jobs, batch=True)
                record.setdefault("enqueue_batch", []).append(many)
                lat = await latency(peer, args.rate, args.latency_seconds)
                record.setdefault("latency_p50_ms", []).append(1000 * statistics.median(lat))
                record.setdefault("latency_p99_ms", []).append(
                    1000 * statistics.quantiles(lat, n=100)[98]
                )
    finally:
        for peer in peers:
            await peer.close()
    return out


#: Ours at more slots: PgQueuer's default worker claims on while completions are written, with
#: no cap on tasks; ours holds at most its concurrency in outcomes being written.
SLOTS_UNCAPPED = 64

#: Rows only ours runs, and the peer's row they compare with.
PEER_ROW = {"drain_x1_64": ("pgqueuer", "drain_x1")}

QUEUE_ROWS = [
    ("drain_x1", "no-op drain, 1 process", "jobs/s", True),
    ("drain_x4", "no-op drain, 4 processes", "jobs/s", True),
    ("drain_x1_64", "no-op drain, 1 process, ours at 64 slots", "jobs/s", True),
    ("enqueue_one", "enqueue one by one", "jobs/s", True),
    ("enqueue_batch", "batch enqueue (1,000 a call)", "jobs/s", True),
    ("latency_p50_ms", "enqueue->start p50 at 200/s", "ms", False),
    ("latency_p99_ms", "enqueue->start p99 at 200/s", "ms", False),
]
FLOW_ROWS = [
    ("pg", "7-step flows, PostgreSQL", "flows/s", True),
    ("sqlite", "7-step flows, SQLite", "flows/s", True),
    ("pg_cpu_ms", "CPU per flow, PostgreSQL", "ms", False),
    ("inflight_seconds", "{inflight:,} in flight, 50 ms steps", "s", False),
    ("inflight_rss_mib", "peak RSS, {inflight:,} in flight", "MiB", False),
]
# The same rows with a second process keeping one core busy.
FLOW_ROWS += [(f"loaded_{key}", f"{label} (busy core)", u, h) for key, label, u, h in FLOW_ROWS]

#: (group, key, peer, least ratio, the goal in words): the ratio is oriented so that above 1
#: means ours is better (a rate ours/theirs; a time, CPU or memory theirs/ours).
GOALS = [
    ("queues", "drain_x1", "pgqueuer", 1.0, "no-op drain, 1 process >= 1.0x PgQueuer"),
    ("queues", "drain_x4", "pgqueuer", 1.0, "no-op drain, 4 processes >= 1.0x PgQueuer"),
    ("queues", "enqueue_one", "pgqueuer", 1.0, "enqueue one by one >= 1.0x PgQueuer"),
    ("queues", "enqueue_batch", "pgqueuer", 0.5, "batch enqueue >= 0.5x PgQueuer"),
    ("queues", "latency_p50_ms", "pgqueuer", 1.0, "enqueue->start p50 <= PgQueuer's"),
    ("queues", "latency_p99_ms", "pgqueuer", 1.0, "enqueue->start p99 <= PgQueuer's"),
    ("flows", "pg", "dbos", 2.0, "7-step flows, PostgreSQL >= 2x DBOS"),
    ("flows", "sqlite", "dbos", 2.0, "7-step flows, SQLite >= 2x DBOS"),
    ("flows", "pg_cpu_ms", "dbos", 3.0, "CPU per flow <= 1/3 of DBOS's"),
    ("flows", "inflight_seconds", "dbos", 2.0, "1,000 in flight: time <= 0.5 of DBOS's"),
    ("flows", "loaded_inflight_seconds", "dbos", 2.0, "the same on a busy machine"),
    ("flows", "inflight_rss_mib", "dbos", 1.0, "peak RSS at 1,000 in flight <= DBOS's"),
]


def ratio(results: dict[str, Any], group: str, key: str, peer: str) -> float | None:
    """Ours against ``peer`` on ``key`` (medians; above 1: ours is better)."""
    rows = {k: h for k, _, _, h in [*QUEUE_ROWS, *FLOW_ROWS]}
    ours = results[group]["ours"].get(key)
    theirs = results[group].get(peer, {}).get(key)
    if not ours or not theirs:
        return None
    mine, other = statistics.median(ours), statistics.median(theirs)
    return mine / other if rows[key] else other / mine


def goals(results: dict[str, Any]) -> list[str]:
    """One line per goal of the benchmark: met or missed, with the ratio."""
    lines = []
    for group, key, peer, least, words in GOALS:
        found = ratio(results, group, key, peer)
        verdict = "not measured" if found is None else ("met" if found >= least else "MISSED")
        shown = "" if found is None else f"{found:.2f}x"
        lines.append(f"{words:<46} {shown:>7}  {verdict}")
    return lines


def table(results: dict[str, Any], inflight: int) -> list[str]:
    lines = [f"{'measure':<50} {'system':<14} {'min':>9} {'median':>9} {'max':>9}  ratio"]
    for group, rows in (("queues", QUEUE_ROWS), ("flows", FLOW_ROWS)):
        systems = results[group]
        for key, template, unit, higher in rows:
            label = template.format(inflight=inflight)
            ours = systems["ours"].get(key)
            for system, record in systems.items():
                if key not in record:
                    continue
                s = spread(record[key])
                versus = ""
                if system == "ours" and key in PEER_ROW:  # a row only ours runs
                    peer, row = PEER_ROW[key]
                    theirs = systems.get(peer, {}).get(row)
                    if theirs:
                        better = s["median"] / statistics.median(theirs)
                        versus = f"{better:.2f}x {peer}'s {row}"
                if system != "ours" and ours:
                    theirs, mine = s["median"], statistics.median(ours)
                    better = mine / theirs if higher else theirs / mine
                    versus = f"ours {better:.2f}x {'(better)' if better >= 1 else '(worse)'}"
                lines.append(
                    f"{label + ' (' + unit + ')':<50} {system:<14} {s['min']:>9.1f} "
                    f"{s['median']:>9.1f} {s['max']:>9.1f}  {versus}"
                )
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, record in results["queues"].items():
        xs = [1, 4]
        ys = [statistics.median(record[f"drain_x{n}"]) for n in xs]
        left.plot(xs, ys, marker="o", label=system)
    left.set(title="No-op drain", xlabel="worker processes", ylabel="jobs/s", xticks=[1, 4])
    left.legend()
    labels = ["PG no-op", "SQLite no-op", "PG in flight\n50 ms steps"]
    width = 0.38
    for i, system in enumerate(("ours", "dbos")):
        record = results["flows"][system]
        inflight = results["meta_inflight"] / statistics.median(record["inflight_seconds"])
        ys = [statistics.median(record["pg"]), statistics.median(record["sqlite"]), inflight]
        right.bar([x + i * width for x in range(3)], ys, width, label=system)
    right.set(title="7-step flows", ylabel="flows/s")
    right.set_xticks([x + width / 2 for x in range(3)], labels)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    cluster = start_cluster(durable=True)  # the server's default durability: fsync on
    try:
        print("queues: ours, PgQueuer, Procrastinate", flush=True)
        results: dict[str, Any] = {"queues": await queues(cluster, args)}
        if args.json:  # kept even if a later part fails
            args.json.write_text(json.dumps(results, indent=2))
        print("flows: ours (sandbox over HTTP), DBOS Transact", flush=True)
        results["flows"], results["flow_cost"] = await flow_peers.run(cluster, args)
        version = await _server_version(cluster)
    finally:
        cluster.destroy()
    results["meta"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": f"{platform.machine()}, {_cpus()} CPUs, {platform.platform()}",
        "postgresql": version,
        "versions": {
            name: metadata.version(name)
            for name in ("ecosign-orchestrator", "pgqueuer", "procrastinate", "dbos")
        },
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 1),
        "params": vars(args) | {"json": str(args.json), "plot": str(args.plot)},
    }
    print()
    print("\n".join(table(results, args.inflight)))
    print("\ngoals (ratios of medians; above 1: ours is better)")
    print("\n".join(goals(results)))
    print(f"\nours, per 7-step flow on PostgreSQL: {results['flow_cost']}")
    ours = results["flows"]["ours"]
    print(
        f"ours, {args.inflight:,} in flight, every round: lease recoveries "
        f"{ours['inflight_lease_recoveries']} (none may happen: no worker is killed), "
        f"notify-artifact-ready calls per flow {ours['inflight_notify_per_flow']}, "
        f"steps run twice {ours['inflight_steps_run_twice']}"
    )
    print(f"\n{results['meta']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    broken = (
        any(n != 0 for n in ours["inflight_lease_recoveries"])
        or any(n != 1.0 for n in ours["inflight_notify_per_flow"])
        or any(n != 0 for n in ours["inflight_steps_run_twice"])
    )
    if broken:  # a guarantee, not a speed: the run fails
        print("FAILED: a flow under load started again under a live worker or ran a step twice")
        sys.exit(1)
    if args.plot:
        plot({**results, "meta_inflight": args.inflight}, args.plot)


async def _server_version(cluster: PostgresCluster) -> str:
    import psycopg

    async with await psycopg.AsyncConnection.connect(cluster.url(), autocommit=True) as conn:
        row = await (await conn.execute("SHOW server_version")).fetchone()
    return str(row[0]) if row else "?"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain run")
    parser.add_argument("--enqueue", type=int, default=1000, help="one-by-one enqueues per run")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--flows", type=int, default=200, help="flows per no-op flow run")
    parser.add_argument("--inflight", type=int, default=1000)
    parser.add_argument(
        "--loaded-rounds", type=int, default=1, help="flow rounds with one core kept busy"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    asyncio.run(main(parser.parse_args()))
