"""The tests' FakeKapso (tests/fakes/kapso_server.py) as a process of its own on a fixed port, for
benchmarks/e2e.py. It records when each text send arrived; GET /__bench/sends returns the records
(with the X-API-Key header, like every other path), GET /__bench/sends?since=N those after the first N.

    .venv/bin/python -m benchmarks.kapso_standin --port 8211 --api-key bench-kapso-key
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes import kapso_server  # noqa: E402


def serve(port: int, api_key: str, send_delay: float = 0.0) -> None:
    fake = kapso_server.FakeKapso(api_key=api_key, port=port)
    fake.send_delay = send_delay  # seconds before answering each send: a real Kapso takes some
    records: list[dict] = []
    lock = threading.Lock()
    route = fake.route

    def recording_route(method: str, path: str, body):
        at = time.time()
        if path.startswith("/__bench/sends"):
            since = int(path.partition("since=")[2] or 0)
            with lock:
                return 200, {"sends": records[since:]}, {}
        status, payload, headers = route(method, path, body)
        if (method == "POST" and path.split("?")[0].endswith("/messages") and status == 200
                and isinstance(payload, dict) and payload.get("messages")):
            text = (body or {}).get("text") or {}
            with lock:
                records.append({"at": at, "wamid": payload["messages"][0]["id"], "to": (body or {}).get("to"),
                                "text": text.get("body") if isinstance(text, dict) else None,
                                "phone_number_id": path.split("?")[0].rstrip("/").split("/")[-2]})
        return status, payload, headers

    fake.route = recording_route
    with fake:
        print(f"kapso stand-in on {fake.url}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8211)
    parser.add_argument("--api-key", default="bench-kapso-key")
    parser.add_argument("--send-delay", type=float, default=0.0, help="seconds before answering each send")
    args = parser.parse_args()
    serve(args.port, args.api_key, args.send_delay)
