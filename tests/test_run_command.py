"""The README's run command, in a fresh clone, as a new user runs it: it installs, migrates, seeds
the demo, starts web + both workers + beat with the Kapso sandbox, and answers a sandbox message.
Started in the background on a free port, on the test database and the tests' Redis index, probed
over HTTP, then stopped with SIGINT (Ctrl-C): every process it started must be gone.

Started as from a terminal: SIGINT at its default disposition. A test run started in the background
(`pytest &`, `nohup`, a CI job without job control) ignores SIGINT, children inherit an ignored signal
across exec, and bash cannot trap a signal that was ignored when it started: scripts/run then never saw
the Ctrl-C and every whole-suite run failed here. If processes do survive, the test prints each one
(state, ignored signals, and what its Python threads are doing, with py-spy when installed).

A demo that cannot be set up (seed_demo fails) stops the run with seed_demo's error on the screen.

Slow (a fresh virtualenv is installed): marked `slow`.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from django.conf import settings

from tests.conftest import embedded_folder
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
CONTACT = "15551234567"

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]




def readme_run_command() -> str:
    """The command the README tells a new user to run (the indented line after "Run it")."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("Run it", 1)[1]
    return next(line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip())


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_redis_url() -> str:
    # From the environment as the test settings read it: robust to another test's leaked override.
    return getattr(settings, "REDIS_URL", None) or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


test_database_url.__test__ = test_redis_url.__test__ = False  # helpers, not tests


def csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)




def walk_the_demo(base: str, email: str, password: str) -> str:
    """What a new user does over HTTP: sign in, connect a number through the sandbox's setup page,
    give it the demo agent, write from its phone page, and read the reply there."""
    web = httpx.Client(base_url=base, timeout=20)
    login = web.get("/login/")
    signed_in = web.post("/login/", data={"username": email, "password": password,
                                          "csrfmiddlewaretoken": csrf(login.text)})
    assert signed_in.status_code == 302, signed_in.text[:500]
    connections = web.get("/o/demo/connections/")
    connect = web.post("/o/demo/connections/connect/", data={"environment": "development",
                                                            "csrfmiddlewaretoken": csrf(connections.text)})
    assert connect.status_code == 302 and "/sandbox/setup/" in connect.headers["location"], connect.text[:500]
    setup_url = connect.headers["location"]
    setup = web.get(setup_url)
    number = re.search(r'name="number" value="(\d+)"', setup.text).group(1)
    done = web.post(setup_url, data={"number": number, "action": "connect", "connection_type": "dedicated",
                                     "csrfmiddlewaretoken": csrf(setup.text)})
    assert done.status_code == 302 and "status=completed" in done.headers["location"]

    def agent_form():
        page = web.get("/o/demo/connections/").text
        found = re.search(r'action="(/o/demo/connections/[0-9a-f-]+/agent/)"', page)
        return (found.group(1), page) if found else None

    action, page = wait_until(agent_form, 60, "the number to be connected", interval=0.5)
    agent_id = re.search(r'<option value="([0-9a-f-]+)"[^>]*>Demo assistant</option>', page).group(1)
    web.post(action, data={"agent": agent_id, "csrfmiddlewaretoken": csrf(page)})

    phone_path = re.search(r'href="(/sandbox/phone/\d+/)"', web.get("/sandbox/").text).group(1)
    phone = web.get(phone_path)
    sent = web.post(phone_path + "send", data={"contact": CONTACT, "name": "Run test",
                                               "text": "Hello, is anyone there?",
                                               "csrfmiddlewaretoken": csrf(phone.text)})
    assert sent.status_code == 302

    def reply():
        chat = web.get(phone_path + "chat", params={"contact": CONTACT, "name": "Run test", "seen": "1"}).text
        found = re.search(r'data-direction="outbound"[^>]*>(.*?)<span class="meta">', chat, re.S)
        return found.group(1).strip() if found else None

    return wait_until(reply, 90, "the agent's reply on the phone page", interval=0.5)


def start_run(folder: Path, env: dict, log: Path, command: str = "scripts/run") -> subprocess.Popen:
    """`scripts/run` as a user starts it in a terminal: Ctrl-C (SIGINT) at its default, whatever this
    test process inherited, in a session of its own (so nothing it starts outlives the test unseen)."""
    def sigint_default():
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(["bash", "-c", command], cwd=folder, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=sigint_default)


def started_by(folder: Path, session: int | None = None) -> list[psutil.Process]:
    """Processes in that session, or started from that folder or naming it (the embedded servers name
    their data folder)."""
    found = []
    for candidate in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            if candidate.status() == psutil.STATUS_ZOMBIE:  # gone, only not yet reaped
                continue
            command, cwd = " ".join(candidate.info["cmdline"] or []), candidate.info["cwd"] or ""
            if os.getsid(candidate.pid) == session or str(folder) in command or cwd.startswith(str(folder)):
                found.append(candidate)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def describe(processes: list[psutil.Process]) -> str:
    """Each process: pid, parent, state, the signals it ignores (SigIgn), its command line, and the stack
    of its Python threads (py-spy, installed with the bench extra)."""
    py_spy = shutil.which("py-spy", path=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    lines = []
    for process in processes:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            ignored = re.search(r"SigIgn:\s*(\w+)", status).group(1)
            lines.append(f"{process.pid} ppid={process.ppid()} {process.status()} SigIgn={ignored} "
                         f"{' '.join(process.cmdline())[:300]}")
            if py_spy and "python" in process.name():
                dump = subprocess.run([py_spy, "dump", "--pid", str(process.pid)], capture_output=True,
                                      text=True, timeout=30)
                lines.append("    " + (dump.stdout or dump.stderr).strip().replace("\n", "\n    "))
        except (OSError, psutil.Error, subprocess.TimeoutExpired):
            continue
    return "\n".join(lines)


def ctrl_c(process: subprocess.Popen, folder: Path, log: Path) -> bool:
    """Ctrl-C, then wait for scripts/run and everything it started to stop. If anything is left, print
    what (the test's output on failure), kill it, and return False."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=90)
        wait_until(lambda: not started_by(folder, process.pid), 60, "every started process to stop", interval=0.5)
        return True
    except (subprocess.TimeoutExpired, AssertionError):
        left = started_by(folder, process.pid)
        state = "still running" if process.poll() is None else f"exited {process.returncode}"
        print(f"Processes left after Ctrl-C (scripts/run {state}):\n{describe(left)}\n"
              f"--- scripts/run's output (end):\n{log.read_text()[-3000:]}")
        for survivor in left:
            with contextlib.suppress(psutil.Error):
                survivor.kill()
        process.kill()
        process.wait(timeout=30)
        return False


def user_env(**extra: str) -> dict:
    """A new user's environment, built explicitly: nothing another test set in os.environ leaks in."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone on the machine's PostgreSQL and Redis (its virtualenv installed by the first run)."""
    folder = tmp_path_factory.mktemp("run") / "switchboard"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True, timeout=120)
    return folder


def test_a_demo_that_cannot_be_set_up_stops_the_run_with_the_error(clone):
    env = user_env(PORT=str(free_port()), DATABASE_URL=test_database_url(), REDIS_URL=test_redis_url(),
                   DEMO_MODEL="no-model-here")

    done = subprocess.run(["scripts/run"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)

    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CommandError: DEMO_MODEL must look like provider:name" in done.stderr
    assert "The demo could not be set up: manage.py seed_demo failed (above)." in done.stderr
    assert "Switchboard is running" not in done.stdout


def test_the_readmes_run_command_runs_the_demo_in_a_fresh_clone(clone, tmp_path):
    command = readme_run_command()
    assert command == "scripts/run"
    port = free_port()
    env = user_env(PORT=str(port), DATABASE_URL=test_database_url(), REDIS_URL=test_redis_url())
    redis.Redis.from_url(test_redis_url()).flushdb()  # no task queued by an earlier test reaches its workers
    log = tmp_path / "run.log"
    process = start_run(clone, env, log, command)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert process.poll() is None, "scripts/run exited:\n" + log.read_text()[-5000:]
            try:
                return httpx.get(base + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 900, "/readyz (install, migrate, start)", interval=0.5)
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        printed = lambda: "Try it:" in log.read_text() and log.read_text()  # noqa: E731
        banner = wait_until(printed, 30, "the printed steps", interval=0.5)
        login = re.search(r"Sign in:\s+(\S+)\s+Password: (\S+)", banner)
        assert login and f"Switchboard is running at {base}" in banner
        assert all(f" {step}. " in banner for step in (1, 2, 3))

        reply = walk_the_demo(base, login.group(1), login.group(2))

        assert "offline demo model" in reply and "Hello, is anyone there?" in reply
    finally:
        stopped = ctrl_c(process, clone, log)
    assert stopped, "processes survived Ctrl-C (see the test's output)"


# --- A machine with nothing but Python: the embedded PostgreSQL and Redis --------------------------


@pytest.fixture(scope="module")
def embedded_clone() -> Path:
    """One fresh clone for the embedded runs (its virtualenv is installed by the first of them)."""
    with embedded_folder() as folder:
        clone = folder / "switchboard"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
        yield clone


def embedded_env(**extra: str) -> dict:
    """No DATABASE_URL or REDIS_URL: the clone must bring its own (SWITCHBOARD_EMBEDDED=1)."""
    return user_env(SWITCHBOARD_EMBEDDED="1", **extra)


def test_scripts_run_comes_up_on_the_embedded_postgres_and_redis(embedded_clone, tmp_path):
    port = free_port()
    log = tmp_path / "run.log"
    process = start_run(embedded_clone, embedded_env(PORT=str(port)), log)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert process.poll() is None, "scripts/run exited:\n" + log.read_text()[-5000:]
            try:
                return httpx.get(base + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 900, "/readyz (install, embedded stores, migrate, start)", interval=0.5)
        banner = wait_until(lambda: "Try it:" in log.read_text() and log.read_text(), 30, "the printed steps")
        used = re.search(r"Using the embedded PostgreSQL \(postgres://postgres@127\.0\.0\.1:(\d+)/switchboard\) "
                         r"and Redis \(redis://127\.0\.0\.1:(\d+)/0\)", banner)
        assert used and {used.group(1), used.group(2)}.isdisjoint({"5432", "6379"})  # not the machine's
        assert (embedded_clone / ".embedded" / "postgres" / "PG_VERSION").exists()
        login = re.search(r"Sign in:\s+(\S+)\s+Password: (\S+)", banner)

        reply = walk_the_demo(base, login.group(1), login.group(2))

        assert "offline demo model" in reply and "Hello, is anyone there?" in reply
    finally:
        stopped = ctrl_c(process, embedded_clone, log)
    assert stopped, "processes survived Ctrl-C (see the test's output)"


def test_scripts_test_runs_the_smoke_subset_on_the_embedded_postgres_and_redis(embedded_clone):
    smoke = ["tests/test_api_auth.py", "tests/test_webhooks_messages.py", "tests/test_outbox.py", "tests/test_llm.py"]
    done = subprocess.run(["scripts/test", "-q", "-p", "no:logging", *smoke], cwd=embedded_clone, env=embedded_env(),
                          capture_output=True, text=True, timeout=1200)

    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "Using the embedded PostgreSQL" in done.stdout
    assert re.search(r"^\d+ passed", done.stdout, re.M)
    assert describe(started_by(embedded_clone)) == ""
