"""Shared plumbing of the benchmarks: databases, processes, CPU accounting, payloads, results.

Safety rails: every database this touches is named sb_bench*, Redis is always DB index 14, and the
processes started here are stopped by their own process group id, never by name.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The virtualenv's tools: the repository's .venv, else the one of the interpreter running this.
BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin" / "python").exists() else Path(sys.executable).parent
PYTHON = str(BIN / "python")
RESULTS = REPO / "benchmarks" / "results.jsonl"
FIXTURES = REPO / "tests" / "fixtures" / "kapso"
PG = "postgres://postgres@127.0.0.1:5432"
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))  # a Redis DB index of the benchmarks' own, flushed
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
SETTINGS = "benchmarks.settings"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- environment -------------------------------------------------------------------------------


def check_db_name(name: str) -> str:
    if not name.startswith("sb_bench"):
        raise SystemExit(f"refusing to use database {name!r}: benchmark databases are named sb_bench*")
    return name


def bench_env(db: str, **extra: str) -> dict[str, str]:
    """The environment of every process a benchmark starts (and of the harness itself)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DATABASE_URL=f"{PG}/{check_db_name(db)}",
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        DJANGO_DEBUG="0",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),  # production's default
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def django_setup(db: str, **extra: str) -> None:
    """Configure this process like the servers it measures, then django.setup()."""
    os.environ.update(bench_env(db, **extra))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def db_exists(db: str) -> bool:
    return psql(f"SELECT 1 FROM pg_database WHERE datname = '{check_db_name(db)}'") == "1"


def db_recreate(db: str) -> None:
    check_db_name(db)
    psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{db}"')


def migrate(db: str) -> None:
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=bench_env(db), check=True)


def redis_flush() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- machine and results -----------------------------------------------------------------------


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": _cmd(["nproc"]),
        "uname": _cmd(["uname", "-srvmo"]),
        "cpu": cpu_model,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "postgres": _cmd(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"]),
        "redis": _cmd(["redis-cli", "-h", "127.0.0.1", "info", "server"]).split("redis_version:")[-1].split()[0]
        if _cmd(["redis-cli", "-h", "127.0.0.1", "ping"]) == "PONG" else "",
    }


def git_commit() -> str:
    head = _cmd(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    dirty = _cmd(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return head + ("-dirty" if dirty else "")


def append_result(benchmark: str, figures: dict, **extra) -> dict:
    record = {
        "benchmark": benchmark,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": git_commit(),
        "command": command_line(),
        **extra,
        "figures": figures,
    }
    with RESULTS.open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")
    print(f"\nappended to {RESULTS.relative_to(REPO)}")
    return record


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    shown = str(script.relative_to(REPO)) if script.is_relative_to(REPO) else sys.argv[0]
    return " ".join(shlex.quote(a) for a in [shown, *sys.argv[1:]])


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


# --- processes -----------------------------------------------------------------------------------


class Proc:
    """A child process in its own process group, stopped by that group's id."""

    def __init__(self, name: str, args: list[str], env: dict, log: Path):
        self.name, self.log = name, log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        self._log_file.close()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def start_gunicorn(port: int, env: dict, log: Path, extra_args: list[str] | None = None) -> Proc:
    args = [str(BIN / "gunicorn"), "config.wsgi:application", "-c", "deploy/gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", *(extra_args or [])]
    return Proc("gunicorn", args, {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, log)


def start_celery(name: str, queue: str, env: dict, log: Path, pool_args: list[str], loglevel: str = "INFO",
                 nice: int = 0) -> Proc:
    """A worker; `nice` > 0 runs it below the web process in CPU priority, as deploy/start/worker-* do."""
    args = [str(BIN / "celery"), "-A", "config", "worker", "-Q", queue, *pool_args,
            "-n", f"{name}@%h", "--loglevel", loglevel]
    if nice:
        args = ["nice", "-n", str(nice), *args]  # exec'd: the worker keeps this pid
    return Proc(name, args, env, log)


def wait_celery(proc: Proc, node: str, env: dict, timeout: float = 90) -> None:
    """Until the worker logged "ready." or answers a ping (whatever the log level)."""
    import socket

    deadline = time.monotonic() + timeout
    full = node.replace("%h", socket.gethostname())
    while time.monotonic() < deadline:
        if not proc.alive():
            raise SystemExit(f"celery {node} exited:\n{proc.log_text()[-3000:]}")
        if " ready." in proc.log_text():
            return
        ping = subprocess.run([str(BIN / "celery"), "-A", "config", "inspect", "ping", "-d", full, "-t", "2"],
                              cwd=REPO, env=env, capture_output=True, text=True)
        if ping.returncode == 0 and "pong" in ping.stdout:
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for celery {node}")


def wait_for(check, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def proc_cpu(pid: int, *, reaped_children: bool = False) -> float:
    """CPU seconds (user+system) of one process; with reaped_children, plus its exited children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLK_TCK


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process tree, including children that exited (gunicorn worker restarts)."""
    return proc_cpu(pid, reaped_children=True) + sum(proc_cpu(p, reaped_children=True) for p in descendants(pid))


def rss_mb(pid: int) -> float:
    """Resident memory of one process, in MB (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def tree_rss_mb(trees: dict[str, int]) -> dict[str, list[float]]:
    """RSS in MB of every process of each tree (a gunicorn master and its workers, a Celery worker
    and its pool processes), parent first."""
    return {name: [rss_mb(p) for p in [pid, *descendants(pid)]] for name, pid in trees.items()}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def postmaster_pid() -> int | None:
    out = _cmd(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW data_directory"])
    try:
        return int(Path(out, "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pg_sessions(db: str) -> int:
    """Sessions ever opened on the database (PostgreSQL 14+): new connections show up here."""
    out = psql(f"SELECT sessions FROM pg_stat_database WHERE datname = '{check_db_name(db)}'")
    return int(out) if out else 0


def pg_backend_pids(db: str) -> list[int]:
    out = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{check_db_name(db)}' AND pid <> pg_backend_pid()")
    return [int(p) for p in out.split()] if out else []


class CpuMeter:
    """CPU used during a window by: our process trees, PostgreSQL, Redis, and the whole box.
    `postgres` is the backends of our database alive at both ends of the window (a connection
    opened or closed in between is missed); `postgres_all` is the whole cluster,
    exited backends included, so other people's databases too. `foreign` is what the rest of the
    machine (other people's work) used meanwhile."""

    def __init__(self, trees: dict[str, int], db: str | None = None, redis_pid: int | None = None):
        self.trees, self.db, self.redis_pid = trees, db, redis_pid
        self.postmaster = postmaster_pid() if db else None

    def _sample(self) -> dict[str, float]:
        sample = {name: tree_cpu(pid) for name, pid in self.trees.items()}
        if self.db:
            sample["_pg"] = {p: proc_cpu(p) for p in pg_backend_pids(self.db)}
            if self.postmaster:
                sample["postgres_all"] = tree_cpu(self.postmaster)
            sample["_sessions"] = pg_sessions(self.db)
        if self.redis_pid:
            sample["redis"] = proc_cpu(self.redis_pid)
        sample["_busy"], sample["_total"] = machine_cpu()
        sample["_wall"] = time.monotonic()
        return sample

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        self.end = self._sample()

    def report(self, extra_cpu: dict[str, float] | None = None) -> dict[str, float]:
        start_pg, end_pg = self.start.pop("_pg", None), self.end.pop("_pg", None)
        d = {k: self.end[k] - self.start.get(k, 0.0) for k in self.end}
        if start_pg is not None and end_pg is not None:
            d["postgres"] = sum(end_pg[p] - start_pg[p] for p in end_pg.keys() & start_pg.keys())
        wall = d.pop("_wall")
        busy, total = d.pop("_busy"), d.pop("_total")
        sessions = d.pop("_sessions", None)
        d.update(extra_cpu or {})
        ours = sum(v for k, v in d.items() if k != "postgres")  # postgres_all includes it
        if "postgres_all" not in d:
            ours = sum(d.values())
        return {
            "wall_s": round(wall, 3),
            "pg_sessions_opened": sessions,
            "cpu_s": {k: round(v, 3) for k, v in d.items()},
            "machine_busy_pct": round(100 * busy / total, 1) if total else None,
            "foreign_cpu_pct": round(100 * max(0.0, busy - ours) / total, 1) if total else None,
        }


def redis_server_pid() -> int | None:
    out = _cmd(["redis-cli", "-h", "127.0.0.1", "info", "server"])
    for line in out.splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":")[1])
    return None


# --- Kapso-shaped payloads -----------------------------------------------------------------------

WORDS = ("hello hi thanks order delivery when where price shipping invoice refund size colour stock open "
         "today tomorrow please help question address change cancel track parcel payment card").split()


def received_template() -> dict:
    return json.loads((FIXTURES / "whatsapp.message.received__text.json").read_text())


def received_payload(template: dict, *, phone_number_id: str, phone: str, wamid: str, text: str,
                     contact_name: str, conversation_id: str, timestamp: int | None = None) -> dict:
    """A `whatsapp.message.received` v2 payload shaped like the fixture, with our values."""
    p = copy.deepcopy(template)
    ts = str(timestamp or int(time.time()))
    p["message"].update(id=wamid, timestamp=ts)
    p["message"]["text"]["body"] = text
    p["message"]["kapso"]["content"] = text
    conv = p["conversation"]
    conv.update(id=conversation_id, phone_number=phone, phone_number_id=phone_number_id)
    conv["kapso"].update(contact_name=contact_name, last_message_id=wamid, last_message_text=text)
    p["phone_number_id"] = phone_number_id
    return p


STATUS_EVENTS = ("sent", "delivered", "read")


def status_templates() -> dict[str, dict]:
    return {status: json.loads((FIXTURES / f"whatsapp.message.{status}__text.json").read_text())
            for status in STATUS_EVENTS}


def status_payload(template: dict, *, phone_number_id: str, phone: str, wamid: str, text: str) -> dict:
    """A `whatsapp.message.sent|delivered|read` v2 payload shaped like the fixture, with our values."""
    p = copy.deepcopy(template)
    now = str(int(time.time()))
    p["message"].update(id=wamid, timestamp=now)
    p["message"]["text"]["body"] = text
    for status in p["message"]["kapso"]["statuses"]:
        status.update(id=wamid, timestamp=now, recipient_id=phone.lstrip("+"))
    p["conversation"].update(phone_number=phone, phone_number_id=phone_number_id)
    p["phone_number_id"] = phone_number_id
    return p


def compact(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_wamid() -> str:
    return "wamid.bench." + uuid.uuid4().hex
