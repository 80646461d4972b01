"""End-to-end fixtures: Switchboard's real processes against the test database.

`start_stack(...)` starts, as subprocesses, gunicorn (config.wsgi, sync workers, the deploy config),
a Celery worker for `default` (prefork), one for `agents` (threads) and, when asked, beat — all on
the pytest test database (so `transactional_db`) and the tests' Redis index, with Kapso and the
model replaced at the network edge by stand-ins running in the test process (FakeKapso,
OpenAIServer). Every process runs in its own session; teardown SIGKILLs its process group.

    .venv/bin/pytest tests/e2e -m "not slow"     # a few minutes
    .venv/bin/pytest tests/e2e -m slow           # default-settings recovery, broker outage
"""

import contextlib
import copy
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection as db

from apps.agents.models import AgentRun
from apps.conversations.models import Message
from apps.kapso.signatures import sign
from tests.factories import compact, make_agent, make_connection, make_org
from tests.fakes.kapso_server import FakeKapso, fixture
from tests.fakes.model_servers import OpenAIServer, ReceivedRequest, ScriptedReply
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECEIVED = "whatsapp.message.received"
SECRET = "e2e-connection-secret"
PHONE_NUMBER_ID = "123456789012345"  # the fixtures' number
SEND_PATH = rf"^/meta/whatsapp/v24\.0/{PHONE_NUMBER_ID}/messages$"
# Recovery settings for fault tests: the sweeper every second, a silent turn is dead after 3 s, a
# send in flight for 4 s is looked up in Kapso's history (longer than the 1 s send timeout used).
FAST_RECOVERY = {"SWEEP_INTERVAL_SECONDS": "1", "AGENT_RUN_STALE_SECONDS": "3", "OUTBOX_STALE_SECONDS": "4"}



# --- helpers ------------------------------------------------------------------------------------






def settle(predicate: Callable[[], object], *, quiet: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until `predicate()` (a snapshot of the state) stops changing for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = predicate(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"the system did not settle within {timeout:g}s")
        time.sleep(0.1)
        current = predicate()
        if current != last:
            last, since = current, time.monotonic()


try:  # resolved here, in the parent: the child between fork and exec must not load libraries
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """In the child: get SIGKILL if pytest dies without tearing down (PR_SET_PDEATHSIG = 1)."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)


def inbound_payload(*, wamid: str | None = None, phone: str = "+15551234567", text: str = "Hello",
                    phone_number_id: str = PHONE_NUMBER_ID, name: str = "John Doe") -> dict:
    """The documented `whatsapp.message.received` fixture, re-addressed."""
    payload = copy.deepcopy(fixture("whatsapp.message.received__text"))
    message = payload["message"]
    message["id"] = wamid or f"wamid.e2e.{uuid.uuid4().hex}"
    message["from"] = phone.lstrip("+")
    message["timestamp"] = str(int(time.time()))
    message["text"]["body"] = message["kapso"]["content"] = text
    payload["conversation"]["phone_number"] = phone
    payload["conversation"]["phone_number_id"] = payload["phone_number_id"] = phone_number_id
    payload["conversation"]["kapso"]["contact_name"] = name
    return payload


def status_payload(event: str, *, wamid: str, phone: str = "+15551234567") -> dict:
    name = {"whatsapp.message.sent": "sent__text", "whatsapp.message.delivered": "delivered__text",
            "whatsapp.message.read": "read__text"}[event]
    payload = copy.deepcopy(fixture(f"whatsapp.message.{name}"))
    payload["message"]["id"] = wamid
    payload["message"]["to"] = phone.lstrip("+")
    payload["conversation"]["phone_number"] = phone
    return payload


def sends(fake_kapso, to: str | None = None) -> list[dict]:
    """Send requests Kapso received (accepted or not), optionally to one contact. Mark-read
    requests (the typing indicator) share the endpoint but send nothing: see `mark_reads`."""
    found = [r for r in fake_kapso.requests_to("POST", SEND_PATH) if r["body"].get("status") != "read"]
    return [r for r in found if to is None or r["body"].get("to") == to.lstrip("+")]


def mark_reads(fake_kapso) -> list[dict]:
    return [r for r in fake_kapso.requests_to("POST", SEND_PATH) if r["body"].get("status") == "read"]


def assert_answered_once(fake_kapso, wamids) -> None:
    """The fault suite's invariants, once the system has settled: every inbound message stored
    once, covered by a turn that finished, every turn answered by exactly one sent reply, and
    nothing sent that Switchboard did not record (so nothing sent twice)."""
    inbound = list(Message.objects.filter(direction="inbound"))
    assert sorted(m.wamid for m in inbound) == sorted(set(wamids))
    assert all(m.run_id for m in inbound), "an inbound message is not covered by any turn"
    runs = AgentRun.objects.filter(pk__in={m.run_id for m in inbound})
    assert {run.status for run in runs} <= {"succeeded", "failed"}, [(r.status, r.error) for r in runs]
    replies = list(Message.objects.filter(direction="outbound", author="agent"))
    assert sorted(str(m.run_id) for m in replies) == sorted(str(run.id) for run in runs)
    assert {m.status for m in replies} == {"sent"}, [(m.status, m.error_code, m.error_text) for m in replies]
    assert sorted(s["wamid"] for s in fake_kapso.sent) == sorted(m.wamid for m in replies)


def use_model(agent, **fields) -> None:
    """Answer with the OpenAI-compatible stand-in (the `model` fixture) instead of the offline model."""
    agent.model_provider, agent.model_name = "openai", "gpt-e2e"
    for name, value in fields.items():
        setattr(agent, name, value)
    agent.save()


class EchoModel(OpenAIServer):
    """An OpenAI stand-in that answers every turn with the user messages it has not answered yet
    (those after its last reply), after `delay` seconds: "Re: a | b"."""

    delay = 0.3

    def __init__(self) -> None:
        super().__init__()
        self.delays: deque[float] = deque()  # per request, before falling back to `delay`

    def _serve(self, request: ReceivedRequest) -> ScriptedReply:
        with self._lock:
            self.requests.append(request)
            delay = self.delays.popleft() if self.delays else self.delay
        messages = request.body["messages"]
        last_reply = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
        new = [m["content"] for m in messages[last_reply + 1 :] if m["role"] == "user"]
        return ScriptedReply(body=self.message_body("Re: " + " | ".join(new), [], 5, 5), delay=delay)


# --- processes ----------------------------------------------------------------------------------


class Process:
    def __init__(self, name: str, args: list[str], env: dict, log_path: Path, ready: str | None):
        self.name, self.args, self.env, self.log_path, self.ready = name, args, env, log_path, ready
        self.popen: subprocess.Popen | None = None
        self.killed = False  # on purpose: a supervisor leaves it down

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {' '.join(self.args)}\n".encode())
            # Started from the main thread: PR_SET_PDEATHSIG follows the thread that forked.
            self.popen = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        self._offset = self.log_path.stat().st_size
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        if self.ready is None:
            return

        def ready():
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            with open(self.log_path, "rb") as log:
                log.seek(self._offset)
                return self.ready.encode() in log.read()

        wait_until(ready, timeout, interval=0.1, what=f"{self.name} to log {self.ready!r}")

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (gunicorn's or Celery's children too) and reap the leader."""
        if self.popen is None:
            return
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        if sig == signal.SIGKILL:
            # Children of the group (prefork pool) may outlive the leader by a moment.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)


class Stack:
    """One Switchboard deployment: web, workers and (optionally) beat, sharing one environment."""

    def __init__(self, *, env: dict, log_dir: Path, tag: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        self.log_dir, self.tag = log_dir, tag
        self.processes: dict[str, Process] = {}
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        self.crashes: list[str] = []  # processes that exited on their own, restarted by supervise()
        self._restarting = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _process(self, name: str, args: list[str], ready: str | None) -> Process:
        process = Process(name, args, self.env, self.log_dir / f"{self.tag}-{name}.log", ready)
        self.processes[name] = process
        return process

    def web(self) -> Process:
        return self._process("web", [str(BIN / "gunicorn"), "config.wsgi:application", "-c", "deploy/gunicorn.conf.py"],
                             None)

    def worker(self, queue: str, *extra: str) -> Process:
        args = [str(BIN / "celery"), "-A", "config", "worker", "-Q", queue, "-n", f"{queue}-{uuid.uuid4().hex[:8]}@%h",
                "--loglevel", "INFO", "--without-gossip", "--without-mingle", *extra]
        return self._process(queue, args, " ready.")

    def beat(self) -> Process:
        schedule = self.log_dir / f"{self.tag}-beat-schedule"
        args = [str(BIN / "celery"), "-A", "config", "beat", "--loglevel", "INFO", "-s", str(schedule)]
        return self._process("beat", args, "beat: Starting")

    def wait_ready(self, timeout: float = 60.0) -> None:
        for process in self.processes.values():
            process.wait_ready(timeout)
        if "web" in self.processes:
            self.wait_web(timeout)

    def wait_web(self, timeout: float = 60.0) -> None:
        def healthy():
            if not self.processes["web"].alive:
                raise AssertionError(f"gunicorn exited:\n{self.processes['web'].output()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return self.http.get("/healthz", timeout=1.0).status_code == 200
            return False

        wait_until(healthy, timeout, interval=0.1, what="gunicorn /healthz")

    def restart(self, name: str, *, wait: bool = True) -> Process:
        """Start a process again after it was killed (same command, a fresh Celery node name)."""
        with self._restarting:
            old = self.processes[name]
            old.kill()
            if name in ("default", "agents"):
                args = [a if not a.startswith(f"{name}-") else f"{name}-{uuid.uuid4().hex[:8]}@%h" for a in old.args]
            else:
                args = old.args
            process = Process(name, args, self.env, old.log_path, old.ready).start()
            self.processes[name] = process
        if wait:
            process.wait_ready()
        return process

    def supervise(self) -> None:
        """Restart what exits on its own, a second later, as the deployment's supervisor does
        (systemd Restart=always, compose restart policies). Crashes are listed in `crashes`."""

        def loop():
            while not self._stopping.wait(0.5):
                for name, process in list(self.processes.items()):
                    if not process.alive and not process.killed and not self._stopping.is_set():
                        self.crashes.append(f"{name} exited with {process.popen.returncode}")
                        time.sleep(1)
                        self.restart(name, wait=False)  # it may have to wait for the broker

        # Children started from this thread die with it (PR_SET_PDEATHSIG), i.e. at stop().
        self._supervisor = threading.Thread(target=loop, name=f"supervisor-{self.tag}", daemon=True)
        self._supervisor.start()

    def post(self, payload: dict | None = None, *, raw: bytes | None = None, secret: str | None = SECRET,
             event: str | None = RECEIVED, key: str | None = None, path: str = "messages",
             timeout: float = 30.0) -> httpx.Response:
        """POST a delivery as Kapso does: compact JSON bytes, HMAC-signed, with Kapso's headers."""
        body = raw if raw is not None else compact(payload)
        headers = {"Content-Type": "application/json", "X-Idempotency-Key": key or str(uuid.uuid4()),
                   "X-Webhook-Payload-Version": "v2"}
        if event:
            headers["X-Webhook-Event"] = event
        if secret is not None:
            headers["X-Webhook-Signature"] = sign(secret, body)
        return self.http.post(f"/webhook/kapso/{path}", content=body, headers=headers, timeout=timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=90)
        with self._restarting:
            for process in self.processes.values():
                process.kill()
        self.http.close()

    def logs(self, tail: int = 6000) -> str:
        return "\n".join(f"----- {name} ({p.log_path})\n{p.output()[-tail:]}" for name, p in self.processes.items())


# --- fixtures -----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


@pytest.fixture
def fake_kapso():
    with FakeKapso(api_key=settings.KAPSO_API_KEY) as fake:
        yield fake


@pytest.fixture
def model():
    """An OpenAI-compatible model stand-in; agents with provider `openai` talk to it."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def tenant(transactional_db):
    """An organization with an agent (offline model, all tools) answering on a connected number."""
    org = make_org(name="E2E Shop")
    agent = make_agent(org)
    connection = make_connection(org, agent=agent, phone_number_id=PHONE_NUMBER_ID, secret=SECRET)
    return org, agent, connection


def database_url() -> str:
    config = settings.DATABASES["default"]  # the test database, once pytest-django has set it up
    auth = quote(config["USER"] or "postgres")
    if config.get("PASSWORD"):
        auth += ":" + quote(config["PASSWORD"])
    return f"postgres://{auth}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/{config['NAME']}"


def launch_stack(*, fake_kapso, log_dir: Path, tag: str, env: dict | None = None, beat: bool = False,
                 model: OpenAIServer | None = None, redis_url: str | None = None, agents_concurrency: int = 8,
                 web_workers: int = 2, flush: bool = True) -> Stack:
    """Start web, both workers and (if asked) beat on the test database; returns when all are ready."""
    redis_url = redis_url or settings.REDIS_URL
    if flush:  # our own Redis index only: no task of an earlier test may reach these workers
        redis.Redis.from_url(redis_url).flushdb()
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "TEST_REDIS_URL": redis_url,
        "TEST_KAPSO_API_BASE_URL": fake_kapso.url,
        "WEB_CONCURRENCY": str(web_workers),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }
    if model is not None:
        full_env.update(OPENAI_BASE_URL=model.url + "/v1", OPENAI_API_KEY="sk-e2e-test")
    full_env.update(env or {})
    stack = Stack(env=full_env, log_dir=log_dir, tag=tag)
    stack.web().start()
    stack.worker("default", "-c", "2").start()
    stack.worker("agents", "-P", "threads", "-c", str(agents_concurrency)).start()
    if beat:
        stack.beat().start()
    stack.wait_ready()
    return stack


@pytest.fixture
def start_stack(transactional_db, fake_kapso, tmp_path, request):
    """start_stack(env=..., beat=..., model=..., redis_url=..., agents_concurrency=...) -> Stack, running."""
    stacks: list[Stack] = []

    def start(**options) -> Stack:
        stack = launch_stack(fake_kapso=fake_kapso, log_dir=tmp_path, tag=f"s{len(stacks)}", **options)
        stacks.append(stack)
        return stack

    yield start
    failed = any(getattr(request.node, f"e2e_report_{when}", None) and
                 getattr(request.node, f"e2e_report_{when}").failed for when in ("setup", "call"))
    died = [f"{stack.tag}/{p.name} (exit {p.popen.returncode})" for stack in stacks
            for p in stack.processes.values() if not p.alive and not p.killed]
    for stack in stacks:
        if failed or died:
            print(f"\n===== logs of stack {stack.tag}\n{stack.logs()}")
        stack.stop()
    db.close()  # the test process's connection may have been cut by a fault test
    if died and not failed:
        pytest.fail(f"processes died on their own during the test: {', '.join(died)}")
