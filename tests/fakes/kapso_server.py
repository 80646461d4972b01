"""A local stand-in for Kapso's HTTP API, for tests: real HTTP on 127.0.0.1, Kapso's paths,
envelopes and error bodies (docs/kapso.md §1–6). It records every request and can be told to fail
the next sends, so tests replace Kapso only at the network edge."""

import base64
import email
import email.policy
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs

from tests.fakes.http import LocalServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kapso"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# The types Meta takes in a media upload (its own error lists them; docs/kapso.md §5.4).
UPLOAD_TYPES = ("audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus",
                "application/vnd.ms-powerpoint", "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/pdf", "text/plain",
                "application/vnd.ms-excel", "image/jpeg", "image/png", "image/webp", "video/mp4", "video/3gpp")
SEND_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


def multipart_fields(raw: bytes, content_type: str) -> dict:
    """A multipart/form-data body as {name: value}: text fields as str, files as
    {"filename", "content_type", "content"}."""
    parsed = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw,
                                      policy=email.policy.HTTP)
    fields = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            fields[name] = {"filename": part.get_filename(), "content_type": part.get_content_type(),
                            "content": content}
        else:
            fields[name] = content.decode()
    return fields


def inbound_history_row(wamid: str, text: str, *, seconds_ago: float = 60, phone: str = "15551234567",
                        name: str = "John Doe") -> dict:
    """One inbound message as Kapso's Meta-proxy listing shows it (`GET /{phone_number_id}/messages`)."""
    return {"id": wamid, "timestamp": str(int(time.time() - seconds_ago)), "type": "text", "from": phone,
            "text": {"body": text},
            "kapso": {"direction": "inbound", "status": "delivered", "processing_status": "completed",
                      "phone_number": f"+{phone}", "has_media": False,
                      "whatsapp_conversation_id": "123e4567-e89b-12d3-a456-426614174000",
                      "contact_name": name, "content": text}}


class FakeKapso(LocalServer):
    def __init__(self, api_key: str = "test-kapso-key", port: int = 0):
        self.api_key = api_key
        self.requests: list[dict] = []
        self.sent: list[dict] = []  # bodies of accepted text sends, in order
        self.send_failures: deque = deque()  # (status, body, headers) answered to the next sends
        self.send_delay = 0.0
        self.send_delays: deque = deque()  # seconds to wait before answering each of the next sends
        self.on_send = None  # called as on_send(wamid, body) after a send is accepted, before the answer
        self.history: list[dict] = []  # what GET /{pnid}/messages returns, newest first (accepted sends too)
        self.phone_numbers: dict[str, dict] = {}
        self.webhooks: list[dict] = []
        # Media by name, served at /media/<name> (Kapso's stored copy, `kapso.media_url`), and by Meta
        # media id through GET /{media_id}?phone_number_id= and its short-lived `download_url`.
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_ids: dict[str, tuple[bytes, str]] = {}
        self.uploads: list[dict] = []  # POST /{pnid}/media: {id, filename, content_type, content}
        self.templates: list[dict] = []  # what GET /{waba_id}/message_templates lists, page by page
        self.customers: list[dict] = []
        self.history_failures = 0  # answer 500 to this many next history lookups
        self.webhook_create_timeouts = 0  # create the next webhooks, then answer too late to be read
        # Kapso's per-key limit: requests per fixed window, with X-RateLimit-* headers; None = no limit.
        self.rate_limit: int | None = None
        self.rate_window = 60.0
        self.rate_limited = 0  # how many requests were answered 429
        self._window_start, self._window_count = 0.0, 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(port)

    def fail_next_send(self, status: int, body: dict, headers: dict | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.send_failures.append((status, body, headers or {}))

    def delay_next_send(self, seconds: float, times: int = 1) -> None:
        """Answer the next sends late (then accept or fail them as scripted): a send can outlast the
        client's timeout and still be accepted, as a real one can."""
        for _ in range(times):
            self.send_delays.append(seconds)

    def add_media(self, name: str, content: bytes, content_type: str) -> str:
        """Serve a file as Kapso's stored copy; returns its `media_url`."""
        self.media[name] = (content, content_type)
        return f"{self.url}/media/{name}"

    def requests_to(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.search(pattern, r["path"])]

    # --- routing ---------------------------------------------------------------------------

    def rate_check(self) -> tuple[tuple[int, object, dict] | None, dict]:
        """Kapso's fixed-window counter per API key: (a 429 with Retry-After past the limit, else
        None; the X-RateLimit-* headers every answer carries)."""
        if self.rate_limit is None:
            return None, {}
        with self._lock:
            now = time.time()
            if now - self._window_start >= self.rate_window:
                self._window_start, self._window_count = now - (now % self.rate_window), 0
            self._window_count += 1
            reset = self._window_start + self.rate_window
            remaining = max(0, self.rate_limit - self._window_count)
            headers = {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": str(remaining),
                       "X-RateLimit-Reset": str(int(reset))}
            if self._window_count > self.rate_limit:
                self.rate_limited += 1
                retry_after = str(max(1, int(reset - now + 0.999)))
                return (429, fixture("api__rate_limited_429"), {**headers, "Retry-After": retry_after}), headers
        return None, headers

    def route(self, method: str, path: str, body: dict | None) -> tuple[int, object, dict]:
        path, _, query_string = path.partition("?")
        query = {key: values[-1] for key, values in parse_qs(query_string).items()}
        if method == "GET" and path == "/platform/v1/customers":
            wanted = query.get("external_customer_id")
            return 200, {"data": [c for c in self.customers if c["external_customer_id"] == wanted],
                         "meta": {"page": 1, "per_page": 20, "total_pages": 1, "total_count": 1}}, {}
        if method == "POST" and path == "/platform/v1/customers":
            customer = body["customer"]
            data = dict(fixture("api__customer_created")["data"], id=str(uuid.uuid4()),
                        name=customer["name"], external_customer_id=customer.get("external_customer_id"))
            self.customers.append(data)
            return 201, {"data": data}, {}
        if m := re.fullmatch(r"/platform/v1/customers/([^/]+)/setup_links", path):
            if method == "POST":
                token = uuid.uuid4().hex
                data = dict(fixture("api__setup_link_created")["data"], id=str(uuid.uuid4()), token=token,
                            url=f"{self.url}/whatsapp/setup/{token}", **(body or {}).get("setup_link", {}))
                return 201, {"data": data}, {}
        if m := re.fullmatch(r"/platform/v1/whatsapp/phone_numbers/([^/]+)", path):
            data = self.phone_numbers.get(m.group(1)) or dict(
                fixture("api__phone_number")["data"], id=m.group(1), phone_number_id=m.group(1))
            return 200, {"data": data}, {}
        if m := re.fullmatch(r"/platform/v1/whatsapp/phone_numbers/([^/]+)/webhooks", path):
            if method == "GET":
                return 200, {"data": [w for w in self.webhooks if w["phone_number_id"] == m.group(1)],
                             "meta": {"page": 1, "per_page": 20, "total_pages": 1, "total_count": 1}}, {}
            data = dict(fixture("api__webhook_created")["data"], id=str(uuid.uuid4()), phone_number_id=m.group(1),
                        **body["whatsapp_webhook"])
            self.webhooks.append(data)
            if self.webhook_create_timeouts:
                self.webhook_create_timeouts -= 1
                time.sleep(self.slow_answer_seconds)
            return 201, {"data": data}, {}
        if re.fullmatch(r"/meta/whatsapp/v[0-9.]+/[^/]+/message_templates", path) and method == "GET":
            return self._templates_page(query)
        if m := re.fullmatch(r"/meta/whatsapp/v[0-9.]+/([0-9]+)", path):
            return self._media_lookup(m.group(1), query_string)
        if m := re.fullmatch(r"/platform/v1/whatsapp/phone_numbers/([^/]+)/webhooks/([^/]+)", path):
            hook = next((w for w in self.webhooks if w["id"] == m.group(2)), None)
            if hook is None:
                return 404, {"error": "Webhook not found"}, {}
            if method == "DELETE":
                self.webhooks.remove(hook)
                return 204, None, {}
            hook.update((body or {}).get("whatsapp_webhook") or {})
            return 200, {"data": hook}, {}
        if re.fullmatch(r"/meta/whatsapp/v[0-9.]+/([^/]+)/media", path) and method == "POST":
            return self._upload(body or {})
        if m := re.fullmatch(r"/meta/whatsapp/v[0-9.]+/([^/]+)/messages", path):
            if method == "GET":
                return self._history_page(query)
            return self._send(m.group(1), body or {})
        return 404, {"error": "Not found"}, {}

    def _templates_page(self, query: dict) -> tuple[int, object, dict]:
        """Graph-style paging: `limit`, and `after` = the index of the next item as the cursor."""
        limit, start = int(query.get("limit", 25)), int(query.get("after", 0))
        page = self.templates[start : start + limit]
        paging: dict = {"cursors": {"before": str(start), "after": str(start + len(page))}}
        if start + limit < len(self.templates):
            paging["next"] = f"{self.url}/next-page"
        return 200, {"data": page, "paging": paging}, {}

    def _media_lookup(self, media_id: str, query: str) -> tuple[int, object, dict]:
        # Kapso's proxy requires phone_number_id on media lookups (docs/kapso.md §7).
        if "phone_number_id=" not in query:
            return 400, {"error": {"message": "phone_number_id is required", "code": 100}}, {}
        if media_id not in self.media_ids:
            return 404, {"error": {"message": "Unsupported get request.", "code": 100}}, {}
        content, content_type = self.media_ids[media_id]
        return 200, {"messaging_product": "whatsapp", "id": media_id, "mime_type": content_type,
                     "file_size": str(len(content)), "url": f"{self.url}/lookaside/{media_id}",
                     "download_url": f"{self.url}/meta/whatsapp/media_download?token={media_id}"}, {}

    def _file(self, path: str, query: str) -> tuple[bytes, str] | None:
        """Anonymous downloads: Kapso's stored copies and the proxy's download_url."""
        if path.startswith("/media/"):
            return self.media.get(path.removeprefix("/media/"))
        if path == "/meta/whatsapp/media_download":
            return self.media_ids.get(query.removeprefix("token="))
        return None
    slow_answer_seconds = 1.0

    def _history_page(self, query: dict) -> tuple[int, object, dict]:
        """Newest first, `limit` a page (at most 100), `after` an opaque cursor, filtered by
        `direction` and `since` as Kapso's Meta-proxy listing is (docs/kapso.md §6)."""
        with self._lock:
            if self.history_failures:
                self.history_failures -= 1
                return 500, {"error": "Internal server error"}, {}
            rows = list(self.history)
        if wanted := query.get("direction"):
            rows = [r for r in rows if (r.get("kapso") or {}).get("direction", wanted) == wanted]
        if query.get("since"):
            since = datetime.fromisoformat(query["since"]).timestamp()
            rows = [r for r in rows if not r.get("timestamp") or int(r["timestamp"]) >= int(since)]
        limit = min(100, int(query.get("limit") or 20))
        start = int(base64.b64decode(query["after"]).decode()) if query.get("after") else 0
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        cursors = {"after": base64.b64encode(str(start + limit).encode()).decode()} if more else {}
        return 200, {"data": page, "paging": {"cursors": cursors}}, {}

    def _upload(self, fields: dict) -> tuple[int, object, dict]:
        """`POST /{pnid}/media`, multipart: Meta checks the file part's own type (docs/kapso.md §7)."""
        file = fields.get("file")
        if fields.get("messaging_product") != "whatsapp" or not isinstance(file, dict):
            return 400, {"error": {"message": "(#100) messaging_product and file are required", "code": 100}}, {}
        if file["content_type"] not in UPLOAD_TYPES:
            return 400, {"error": {"message": "(#100) Param file must be a file with one of the following types: "
                                              + ", ".join(UPLOAD_TYPES), "type": "OAuthException", "code": 100}}, {}
        with self._lock:
            media_id = str(4490709327384000 + next(self._ids))
            self.uploads.append({"id": media_id, **file})
            self.media_ids[media_id] = (file["content"], file["content_type"])
        return 200, {"id": media_id}, {}

    def _send(self, phone_number_id: str, body: dict) -> tuple[int, object, dict]:
        if body.get("status") == "read":
            return 200, {"success": True}, {}
        kind = body.get("type")
        media_id = (body.get(kind) or {}).get("id") if kind in SEND_MEDIA_TYPES else None
        if media_id is not None and media_id not in self.media_ids:  # as Meta: only an uploaded id
            return 400, {"error": {"message": f"(#100) Invalid parameter: media id {media_id} was not uploaded",
                                   "type": "OAuthException", "code": 100}}, {}
        with self._lock:  # a scripted delay and failure belong to the send that arrives next
            delay = self.send_delays.popleft() if self.send_delays else self.send_delay
            failure = self.send_failures.popleft() if self.send_failures else None
        if delay:
            time.sleep(delay)
        if failure is not None:
            return failure
        to = body.get("to", "")
        recipient = body.get("recipient", "")
        with self._lock:
            wamid = f"wamid.fake.{next(self._ids):06d}"
            self.sent.append({**body, "phone_number_id": phone_number_id, "wamid": wamid})
            # Kapso lists what it accepted, so a sender that lost the answer can look its send up.
            row = {"id": wamid, "timestamp": str(int(time.time())), "type": body.get("type", "text"),
                   "text": body.get("text") or {}, "kapso": {"direction": "outbound", "status": "sent"}}
            if to:
                row.update(to=to)
                row["kapso"]["phone_number"] = f"+{str(to).lstrip('+')}"
            else:
                row.update(to_user_id=recipient)
            self.history.insert(0, row)
        if self.on_send is not None:
            self.on_send(wamid, body)
        contact = {"input": to, "wa_id": to} if to else {"input": recipient, "user_id": recipient}
        return 200, {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}, {}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("multipart/form-data"):
                    body = multipart_fields(raw, content_type)
                else:
                    body = json.loads(raw) if raw else None
                fake.requests.append({"method": method, "path": self.path, "body": body,
                                      "headers": dict(self.headers), "at": time.time()})
                path, _, query = self.path.partition("?")
                if path.startswith(("/media/", "/meta/whatsapp/media_download")):
                    return self._serve_file(fake._file(path, query))
                if self.headers.get("X-API-Key") != fake.api_key:
                    status, payload, headers = 401, {"error": "Invalid API key"}, {}
                else:
                    limited, rate_headers = fake.rate_check()
                    status, payload, headers = limited or fake.route(method, self.path, body)
                    headers = {**rate_headers, **headers}
                data = json.dumps(payload).encode() if payload is not None else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout) or was killed mid-send; what it asked for stands

            def _serve_file(self, found: tuple[bytes, str] | None):
                content, content_type = found or (b'{"error": "Media download failed"}', "application/json")
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_DELETE(self):
                self._serve("DELETE")

            def do_PATCH(self):
                self._serve("PATCH")

        return Handler
