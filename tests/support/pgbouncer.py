"""A throwaway PgBouncer (Debian's) in front of a test cluster, standing in for Supabase's pooler
(Supavisor): a free loopback port, a temp dir, a pool mode, torn down at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.pgcluster import PostgresCluster, _free_port


class PgBouncerUnavailable(RuntimeError):
    """No pgbouncer binary on this machine."""


class PgBouncer:
    """One PgBouncer process; ``url(db)`` connects through it."""

    def __init__(self, cluster: PostgresCluster, mode: str) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise PgBouncerUnavailable("pgbouncer not found (make test installs it with apt-get)")
        self.mode = mode
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"ecosign-pgb-{mode}-"))
        # Transaction mode: fewer server connections than the orchestrator's pools hold, so
        # transactions of one client connection land on different server connections, as on
        # Supabase. Session mode pins one server connection per client connection: enough for
        # every test's pools (pool + lease + LISTEN connections per repository).
        server_connections = 4 if mode == "transaction" else 60
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={cluster.port} user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = any\npool_mode = {mode}\n"
            f"default_pool_size = {server_connections}\nmax_client_conn = 500\n"
            "query_wait_timeout = 20\n"  # a client queued that long is a test's error, said
            f"logfile = {self.root / 'pgbouncer.log'}\npidfile = {self.root / 'pgbouncer.pid'}\n"
        )
        as_user: list[str] = []
        if os.geteuid() == 0:  # pgbouncer refuses to run as root: it switches user itself
            shutil.chown(self.root, "postgres", "postgres")
            as_user = ["-u", "postgres"]
        self.proc = subprocess.Popen(
            [binary, *as_user, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # it writes to its logfile
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    error = log.read_text()[-2000:] if log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {error}") from None
                time.sleep(0.05)

    def url(self, database: str = "postgres", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # a throwaway: no clean shutdown to wait for
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
