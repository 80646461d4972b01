"""Helpers for tests that drive the sandbox: a webhook receiver on 127.0.0.1, a stand-in for the
Celery queue that runs the sandbox's tasks on demand, and a check that a payload has a documented
fixture's shape."""

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from tests.fakes.http import LocalServer


class Receiver(LocalServer):
    """A webhook endpoint that records what it gets and answers `status` (or the next of `script`)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.script: list[int] = []
        self.requests: list[dict] = []
        super().__init__()

    def events(self, name: str) -> list[dict]:
        return [r for r in self.requests if r["headers"].get("X-Webhook-Event") == name]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                          "body": json.loads(raw)})
                status = receiver.script.pop(0) if receiver.script else receiver.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        return Handler


class TaskQueue:
    """Replaces `enqueue` in the sandbox's modules: records (task, args, countdown); `run()` executes
    what is queued, in order, including what the tasks queue in turn."""

    def __init__(self):
        self.queued: list[tuple[object, tuple, float | None]] = []

    def __call__(self, task, *args, countdown: float | None = None) -> bool:
        self.queued.append((task, args, countdown))
        return True

    def run(self, *, only: Callable | None = None, limit: int = 200) -> int:
        ran = 0
        while self.queued and ran < limit:
            task, args, _ = self.queued.pop(0)
            if only is not None and not only(task):
                continue
            task.run(*args)
            ran += 1
        return ran

    def countdowns(self, name: str) -> list[float | None]:
        return [countdown for task, _, countdown in self.queued if task.name.endswith(name)]


def shape_mismatches(expected: object, actual: object, path: str = "$") -> list[str]:
    """Where `actual` lacks a key of `expected` or holds another JSON type. Extra keys are allowed
    (Kapso documents fields beyond its samples); lists are compared item by item on their first item."""
    problems: list[str] = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {type(actual).__name__}"]
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += shape_mismatches(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {type(actual).__name__}"]
        if expected and actual:
            problems += shape_mismatches(expected[0], actual[0], f"{path}[0]")
    elif expected is None or actual is None:
        pass  # nullable fields: null in a sample, a value in real data (or the reverse)
    elif isinstance(expected, bool) != isinstance(actual, bool) or (
        isinstance(expected, int | float) != isinstance(actual, int | float)
    ) or isinstance(expected, str) != isinstance(actual, str):
        problems.append(f"{path}: expected {type(expected).__name__}, got {type(actual).__name__}")
    return problems
