"""A PostgreSQL of the test's own (pgserver's bundled binaries: initdb, pg_ctl) on its own port
and data directory under /tmp, which a test may stop and start at will — never the machine's
shared server."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.processes import free_port


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: pgserver then runs it as its own `pgserver` user."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists  # type: ignore[import-untyped]

    ensure_user_exists("pgserver")
    return "pgserver"


@dataclass
class ThrowawayPostgres:
    data_dir: Path
    port: int
    user: str | None

    @classmethod
    def create(cls) -> ThrowawayPostgres:
        from pgserver import _commands  # type: ignore[import-untyped]
        from pgserver.utils import ensure_prefix_permissions  # type: ignore[import-untyped]

        user = _system_user()
        data_dir = Path(tempfile.mkdtemp(prefix="marketplace-pg-", dir="/tmp"))
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            ensure_prefix_permissions(data_dir)
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        _commands.initdb(
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=data_dir,
            user=user,
            timeout=120,
        )
        return cls(data_dir, free_port(), user)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        from pgserver import _commands

        _commands.pg_ctl(
            [
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}",
                "-l",
                str(self.data_dir / "log"),
                "start",
            ],
            pgdata=self.data_dir,
            user=self.user,
            timeout=90,
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast`: every session is ended (as in a restart or failover), then the server stops."""
        from pgserver import _commands

        _commands.pg_ctl(
            ["-w", "-t", "60", "-m", mode, "stop"], pgdata=self.data_dir, user=self.user, timeout=90
        )

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
