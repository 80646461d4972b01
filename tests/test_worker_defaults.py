"""`celery -A config worker` with no flags runs the worker Switchboard needs, and the deploy scripts
rely on the same settings: a real worker process is started and its start-up banner read."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, ROOT, database_url

pytestmark = pytest.mark.e2e


def banner(command: list[str], env: dict, tmp_path: Path) -> str:
    log = tmp_path / "worker.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while " ready." not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        return log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def env(transactional_db, settings) -> dict:
    """The machine's environment without any CELERY_* sizing, on the tests' database and Redis."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    return {**base, "PATH": f"{BIN}:{os.environ['PATH']}", "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(), "TEST_REDIS_URL": settings.REDIS_URL}


@pytest.mark.parametrize(
    ("command", "concurrency", "queues"),
    [
        (["celery", "-A", "config", "worker"], "16 (thread)", ["agents", "default"]),
        (["deploy/start/worker-agents"], "32 (thread)", ["agents"]),
        (["deploy/start/worker-default"], "8 (thread)", ["default"]),
    ],
)
def test_a_worker_started_without_flags_uses_a_thread_pool_on_its_queues(env, tmp_path, command, concurrency, queues):
    text = banner(command, env, tmp_path)

    assert f".> concurrency: {concurrency}" in text
    assert re.findall(r"^\s+\.> (\w+)\s+exchange=", text, re.M) == queues
    assert " ready." in text
