"""A scripted fault-injecting HTTP server on loopback, for client tests over real sockets.

Each route (method, path) answers with a script of actions taken in order, the last one repeating:
`Reply` (a status, JSON body and headers, optionally after a delay), `Drop` (read the request, then
close the socket without answering) or a callable that builds an action from the recorded request.
Every request is recorded (method, path, headers, JSON body, client port) so tests can assert what
the client sent and how many attempts it made. HTTP/1.1 with keep-alive, so connection reuse shows.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class Drop:
    """Close the connection without answering."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    port: int


Action = Reply | Drop | Callable[[Recorded], "Reply | Drop"]


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    r = reply or Reply(200, {"status": "ok"})
    return Reply(r.status, r.body, r.headers, seconds, r.raw)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error in rerankd's shape: {"error": {message, type, code}, "message", "detail"}."""
    body = {
        "error": {"message": message, "type": "error", "code": status},
        "message": message,
        "detail": message,
    }
    return Reply(status, body, headers or {})


def rank_by(score: Callable[[str], float], *, shape: str = "results") -> Callable[[Recorded], Reply]:
    """A valid rerank answer for whatever documents came: each scored by `score(text)`, sorted, cut
    to top_n. shape: "results" (Cohere/Jina/vLLM/SiliconFlow/rerankd) or "tei" (a bare array)."""

    def answer(req: Recorded) -> Reply:
        body = req.body or {}
        docs = body.get("documents", body.get("texts", []))
        ranked = sorted(((i, score(d)) for i, d in enumerate(docs)), key=lambda p: -p[1])
        if body.get("top_n") is not None:
            ranked = ranked[: body["top_n"]]
        if shape == "tei":
            return Reply(200, [{"index": i, "score": s} for i, s in ranked])
        return Reply(
            200,
            {
                "id": "fake",
                "model": body.get("model") or "fake-model",
                "results": [{"index": i, "relevance_score": s} for i, s in ranked],
                "usage": {"total_tokens": 7 * len(docs)},
            },
        )

    return answer


class FaultServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], list[Action]] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def on(self, method: str, path: str, *actions: Action) -> FaultServer:
        """Script a route: the actions in order, the last repeating."""
        with self._lock:
            self._routes[(method.upper(), path)] = list(actions)
        return self

    def hits(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _next(self, rec: Recorded) -> Reply | Drop:
        with self._lock:
            self.requests.append(rec)
            script = self._routes.get((rec.method, rec.path))
            if not script:
                return error(404, f"no route {rec.method} {rec.path}")
            action = script.pop(0) if len(script) > 1 else script[0]
        return action(rec) if callable(action) else action

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            rec = Recorded(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                self.client_address[1],
            )
            action = server._next(rec)
            with server._lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._act(action)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _act(self, action: Reply | Drop) -> None:
            if isinstance(action, Drop):
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if action.delay and server.stopping.wait(action.delay):
                return
            payload = action.raw if action.raw is not None else json.dumps(action.body).encode()
            try:
                self.send_response(action.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for k, v in action.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True

        do_GET = do_POST = _handle

    return Handler


@contextlib.contextmanager
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()
