"""A no-op worker process of one peer, run through its documented API with its defaults.

``python bench/peer_worker.py pgqueuer|procrastinate DSN CONCURRENCY``; runs until SIGTERM.
Ours runs as ``ecosign-orchestrator worker`` (bench/peers.py starts it).
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def pgqueuer_worker(dsn: str, concurrency: int) -> None:
    """PgQueuer's default worker (what ``pgq run`` starts): ``PgQueuer`` over an asyncpg
    connection, its recommended driver, with its default settings (batches of 10, no cap on
    tasks in flight: ``concurrency`` does not apply), on uvloop as ``pgq run`` runs it."""
    import asyncpg
    from pgqueuer import PgQueuer

    connection = await asyncpg.connect(dsn)
    app = PgQueuer.from_asyncpg_connection(connection)

    @app.entrypoint("noop")
    async def noop(job: object) -> None:
        return None

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, app.shutdown.set)
    await app.run()


async def procrastinate_worker(dsn: str, concurrency: int) -> None:
    """Procrastinate's worker: ``App.run_worker_async`` on the psycopg connector."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.run_worker_async(concurrency=concurrency, install_signal_handlers=True)


def main() -> None:
    system, dsn, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if system == "pgqueuer":
        # ``pgq run`` runs its worker on uvloop, a PgQueuer dependency (its CLI's asyncio_run).
        import uvloop

        uvloop.run(pgqueuer_worker(dsn, concurrency))
    else:  # Procrastinate's command line runs on asyncio's own loop
        asyncio.run(procrastinate_worker(dsn, concurrency))


if __name__ == "__main__":
    main()
