"""Stand-in model providers: real HTTP servers on 127.0.0.1 that speak the providers' wire formats.

Each server answers from a scripted queue and records every request it received, so a test can
drive the product over the network exactly as a provider would, then inspect what was sent:

    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL = server.url + "/v1"
        server.reply_tool_call("whatsapp.send", {"text": "hi"})
        server.reply_text("Done.")
        ...
        assert server.requests[0].body["model"] == "gpt-test"

OpenAIServer speaks chat completions (any OpenAI-compatible provider); AnthropicServer speaks the
Messages API. Either answers any POST path; `requests[i].path` tells which one was called.
With the queue empty, a server answers `default` if set, else a 500 that names the problem.
"""

import itertools
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# A real model can only name tools by the wire-safe names it was offered; scripted names are made
# safe the same way, so a test may script "whatsapp.send" (or the wire name itself, unchanged).
_UNSAFE_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass
class ScriptedReply:
    status: int = 200
    body: Any = None  # a dict/list is sent as JSON; str or bytes are sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering, e.g. to outlast the client's timeout


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON, or the raw text when it was not JSON


class ModelServer:
    """Queue, recording and lifecycle; subclasses say how replies look on the wire."""

    def _transcribe(self, request: ReceivedRequest) -> "ScriptedReply":
        return ScriptedReply(status=404, body={"error": {"message": "no transcription endpoint here"}})

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.default: ScriptedReply | None = None
        self._replies: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True  # a handler still sleeping out a delay must not block stop()
        # A short poll interval, because stop() waits up to one interval for the loop to notice.
        serve = lambda: self._httpd.serve_forever(poll_interval=0.02)  # noqa: E731
        threading.Thread(target=serve, name=type(self).__name__, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- scripting -----------------------------------------------------------------------------

    def add(self, reply: ScriptedReply) -> None:
        with self._lock:
            self._replies.append(reply)

    def reply_text(self, text: str, *, input_tokens: int = 11, output_tokens: int = 7, delay: float = 0.0) -> None:
        self.add(ScriptedReply(body=self.message_body(text, [], input_tokens, output_tokens), delay=delay))

    def reply_tool_call(self, name: str, arguments: dict | None = None, *, text: str = "", delay: float = 0.0) -> str:
        """Script one tool call; returns its id, which the product should echo in the tool result."""
        return self.reply_tool_calls([(name, arguments or {})], text=text, delay=delay)[0]

    def reply_tool_calls(self, calls: list[tuple[str, dict]], *, text: str = "", delay: float = 0.0) -> list[str]:
        wire = [(self.new_call_id(), _UNSAFE_CHARS.sub("_", name), arguments) for name, arguments in calls]
        self.add(ScriptedReply(body=self.message_body(text, wire, 11, 7), delay=delay))
        return [call_id for call_id, _, _ in wire]

    def reply_error(
        self, status: int, message: str = "scripted failure", *, headers: dict | None = None, delay: float = 0.0
    ) -> None:
        self.add(
            ScriptedReply(status=status, body=self.error_body(status, message), headers=headers or {}, delay=delay)
        )

    def reply_raw(self, body: str | bytes, *, status: int = 200, delay: float = 0.0) -> None:
        """An answer that need not be valid JSON, e.g. a proxy's HTML page or a truncated body."""
        self.add(ScriptedReply(status=status, body=body, delay=delay))

    @property
    def last_body(self) -> Any:
        return self.requests[-1].body

    @property
    def pending(self) -> int:
        """Scripted replies not yet served; a test can assert this is 0 at the end."""
        with self._lock:
            return len(self._replies)

    # --- wire format, per provider ---------------------------------------------------------------

    def new_call_id(self) -> str:
        return f"call_{next(self._ids)}"

    def message_body(self, text: str, calls: list[tuple[str, str, dict]], input_tokens: int, output_tokens: int) -> Any:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    # --- serving (called from handler threads) ---------------------------------------------------

    def _embed(self, request: ReceivedRequest) -> "ScriptedReply":
        return ScriptedReply(status=404, body={"error": {"message": "no embeddings endpoint here"}})

    def _serve(self, request: ReceivedRequest) -> ScriptedReply:
        if request.path.endswith("/audio/transcriptions"):
            return self._transcribe(request)
        if request.path.endswith("/embeddings"):
            return self._embed(request)
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
        return self.default or ScriptedReply(status=500, body=self.error_body(500, "the stand-in has no reply left"))


class OpenAIServer(ModelServer):
    """POST …/chat/completions, as OpenAI, xAI, Groq, OpenRouter and Ollama answer it;
    POST …/audio/transcriptions (multipart: `file`, `model`), answering `{"text": transcript, "usage": …}`
    with whisper-1's duration usage (`{"type": "duration", "seconds": N}`), or, with `transcription_usage`
    set, that (gpt-4o-transcribe's `{"type": "tokens", "input_tokens", "output_tokens", …}`); and
    POST …/embeddings, answering one vector per input text from `concepts`.

    The embeddings stand in for meaning: `concepts` maps word stems to a topic (a dimension), and a
    text's vector counts the topics of its words, so "money back" and "refund" are near each other
    while sharing no word. Other words are ignored; a text with none of the topics points along a last
    dimension of its own (unrelated to every topic)."""

    transcript = "Hello, I need help with my order"
    transcription_usage: dict = {"type": "duration", "seconds": 30}
    concepts: dict[str, int] = {}

    def __init__(self) -> None:
        super().__init__()
        self.transcriptions: list[ReceivedRequest] = []  # kept apart from the chat requests
        self.embeddings: list[ReceivedRequest] = []  # likewise

    def _embed(self, request: ReceivedRequest) -> ScriptedReply:
        with self._lock:
            self.embeddings.append(request)
        body = request.body if isinstance(request.body, dict) else {}
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not body.get("model") or not isinstance(texts, list) or not texts:
            return ScriptedReply(status=400, body=self.error_body(400, "`model` and `input` are required"))
        data = [{"object": "embedding", "index": i, "embedding": self.embedding(text)} for i, text in enumerate(texts)]
        return ScriptedReply(body={"object": "list", "data": data, "model": body["model"],
                                   "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})

    def embedding(self, text: str) -> list[float]:
        size = max(self.concepts.values(), default=-1) + 2
        vector = [0.0] * size
        for word in re.findall(r"[a-z]+", text.lower()):
            topic = next((t for stem, t in self.concepts.items() if word.startswith(stem)), None)
            if topic is not None:
                vector[topic] += 1.0
        return vector if any(vector) else [0.0] * (size - 1) + [1.0]

    def _transcribe(self, request: ReceivedRequest) -> ScriptedReply:
        with self._lock:
            self.transcriptions.append(request)
        if "multipart/form-data" not in request.headers.get("content-type", "") or 'name="file"' not in request.body:
            return ScriptedReply(status=400, body=self.error_body(400, "a multipart `file` is required"))
        return ScriptedReply(body={"text": self.transcript, "usage": self.transcription_usage})

    def message_body(
        self, text: str, calls: list[tuple[str, str, dict]], input_tokens: int, output_tokens: int
    ) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
                for call_id, name, arguments in calls
            ]
        return {
            "id": f"chatcmpl-standin-{next(self._ids)}",
            "object": "chat.completion",
            "created": 0,
            "model": "stand-in",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }

    def error_body(self, status: int, message: str) -> dict:
        return {"error": {"message": message, "type": "standin_error", "code": str(status)}}


class AnthropicServer(ModelServer):
    """POST /v1/messages, as Anthropic answers it."""

    def new_call_id(self) -> str:
        return f"toolu_{next(self._ids):04d}"

    def message_body(
        self, text: str, calls: list[tuple[str, str, dict]], input_tokens: int, output_tokens: int
    ) -> dict:
        content: list[dict] = [{"type": "text", "text": text}] if text else []
        content += [{"type": "tool_use", "id": call_id, "name": name, "input": args} for call_id, name, args in calls]
        return {
            "id": f"msg_standin_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": "stand-in",
            "content": content,
            "stop_reason": "tool_use" if calls else "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    def error_body(self, status: int, message: str) -> dict:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = server._serve(ReceivedRequest(path=self.path, headers=headers, body=_parse(raw)))
            if reply.delay and server._stopping.wait(reply.delay):
                return  # stopping: drop the connection rather than answer a test that is gone
            try:
                self._answer(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test); nothing left to tell it

        def _answer(self, reply: ScriptedReply) -> None:
            if isinstance(reply.body, (dict, list)):
                payload, content_type = json.dumps(reply.body).encode(), "application/json"
            else:
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body or b""
                content_type = "text/plain; charset=utf-8"
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet; the recorded requests say what happened

    return Handler


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
