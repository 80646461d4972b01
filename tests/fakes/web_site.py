"""A small web site on 127.0.0.1 for knowledge pages: `pages` maps a path to (status, headers, body)."""

from http.server import BaseHTTPRequestHandler

from .http import LocalServer


class WebSite(LocalServer):
    def __init__(self, pages: dict[str, tuple[int, dict, bytes]]):
        self.pages = pages
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        super().__init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                site.requests.append((self.path, self.headers.get("Host", "")))
                status, headers, body = site.pages.get(self.path, (404, {"Content-Type": "text/plain"}, b"missing"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        return Handler
