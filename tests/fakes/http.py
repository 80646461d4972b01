"""A threaded HTTP server on 127.0.0.1 for the stand-ins tests run at the network edge."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the stdlib's 5 refuses bursts (benchmarks send hundreds at once)
    allow_reuse_address = True


class LocalServer:
    """Subclasses give `_handler()`; `with Server() as server:` serves at `server.url`, on a free
    port unless one is given."""

    def __init__(self, port: int = 0):
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
