"""The ASGI gate every request passes: request id, drain refusal, auth, body-size limit, metrics and
one structured log line. Pure ASGI (no BaseHTTPMiddleware), so it adds no task per request."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from rerankd.errors import RerankdError, RetryableError
from rerankd.server.errors import error_body, retry_after
from rerankd.server.sanitize import replace_lone_surrogates
from rerankd.server.state import ServerState

access = logging.getLogger("rerankd.access")
log = logging.getLogger("rerankd.server")

OPEN_PATHS = frozenset({"/health", "/ready"})
MAX_REQUEST_ID = 128
BODY_READ_TIMEOUT = 30.0  # seconds for a whole request body: a stalled upload must not hold a slot forever
# A request id is echoed in a header and logged: printable ASCII only, anything else gets a fresh id
# (re-encoding a non-ASCII id would echo it double-encoded).
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")

Scope = dict[str, Any]


def key_matches(provided: str | bytes, keys: Iterable[str]) -> bool:
    """Constant-time over every key: no early exit that would tell which key came close."""
    raw = provided.encode() if isinstance(provided, str) else provided
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(raw, key.encode())
    return ok


def request_id_of(raw: bytes) -> str:
    return raw.decode("ascii") if _REQUEST_ID.fullmatch(raw) else uuid.uuid4().hex


def bearer(headers: dict[bytes, bytes]) -> bytes | None:
    """The token of `Authorization: Bearer <token>`, as the raw bytes sent (keys may be non-ASCII)."""
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        return token.strip()
    return None


class Gate:
    """`known_paths`: the metrics' route labels; `json_paths`: the routes that take a JSON body (from
    the app's own routes, so a new route needs no second list here)."""

    def __init__(
        self, app: Any, state: ServerState, known_paths: set[str], json_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.state = state
        self.known_paths = known_paths
        self.json_paths = json_paths

    def _route_label(self, path: str) -> str:
        if path in self.known_paths:
            return path
        return "/ui" if path.startswith("/ui") else "other"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state, s = self.state, self.state.settings
        raw_headers = scope.get("headers") or []
        headers = dict(raw_headers)
        request_id = request_id_of(headers.get(b"x-request-id", b""))
        if scope["method"] == "HEAD" and scope["path"] in OPEN_PATHS:
            # Probes use HEAD: answer as GET (a copy of the scope: the server still sees HEAD and
            # sends no body).
            scope = {**scope, "method": "GET"}
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        route = self._route_label(path)
        start = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = 1
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                if state.phase == "draining":
                    # Close the connection after this answer: the client's next request then goes to a
                    # fresh connection (another replica), not to one the shutdown is about to close.
                    message["headers"].append((b"connection", b"close"))
            await send(message)

        async def refuse(
            status: int, message: str, code: str, extra: list[tuple[bytes, bytes]] | None = None
        ) -> None:
            body = error_body(status, message, code).model_dump_json()
            await send_wrapped(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), *(extra or [])],
                }
            )
            await send_wrapped({"type": "http.response.body", "body": body.encode()})

        async def refuse_with(error: RerankdError) -> None:
            extra = None
            if isinstance(error, RetryableError):
                extra = [(b"retry-after", retry_after(error.retry_after).encode())]
            await refuse(error.status_code, error.message, error.code, extra)

        state.in_flight += 1
        state.metrics.in_flight.inc()
        try:
            try:
                if state.phase == "draining" and path not in OPEN_PATHS:
                    await refuse_with(state.unavailable())
                elif (
                    s.api_keys
                    and path not in OPEN_PATHS
                    and sum(k == b"authorization" for k, _ in raw_headers) > 1
                ):
                    # Proxies and servers disagree on which of two wins: refuse rather than pick one.
                    await refuse(400, "send one Authorization header, not several", "invalid_request")
                elif (
                    s.api_keys
                    and path not in OPEN_PATHS
                    and route != "/ui"  # a browser sends no bearer header: the UI asks for the key itself
                    and not key_matches(bearer(headers) or b"", s.api_keys)
                ):
                    await refuse(
                        401,
                        "missing or invalid API key: send 'Authorization: Bearer <key>'",
                        "unauthorized",
                        [(b"www-authenticate", b"Bearer")],
                    )
                elif scope["method"] in ("POST", "PUT", "PATCH") and path in self.json_paths:
                    # `curl -d` and some clients send JSON without a JSON content type: read it as JSON anyway.
                    scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
                    scope["headers"].append((b"content-type", b"application/json"))
                    try:
                        async with asyncio.timeout(BODY_READ_TIMEOUT):
                            body = await self._read_body(receive, headers)
                    except TimeoutError:
                        await refuse(
                            408,
                            f"the request body did not arrive within {BODY_READ_TIMEOUT:g} seconds",
                            "request_timeout",
                        )
                        return
                    if body is None:
                        await refuse(
                            413,
                            f"the request body is larger than the server's limit of {s.max_body_bytes} bytes",
                            "payload_too_large",
                        )
                    else:
                        body = replace_lone_surrogates(body)
                        await self.app(scope, _replay(body, receive), send_wrapped)
                else:
                    await self.app(scope, receive, send_wrapped)
            except Exception as e:
                # Caught here, not by Starlette's last-resort handler, which re-raises to the server: its
                # traceback would print the request's texts (pydantic's input_value=...). Type and route only.
                log.error("unhandled %s on %s %s", type(e).__name__, scope["method"], path)
                if not status_holder.get("started"):
                    await refuse(500, f"internal error: {type(e).__name__}", "internal_error")
        finally:
            state.in_flight -= 1
            state.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            status = status_holder["status"]
            state.metrics.requests.labels(route, str(status)).inc()
            state.metrics.latency.labels(route).observe(elapsed)
            if path not in OPEN_PATHS and route != "/metrics":
                access.info(
                    json.dumps(
                        {
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": path,
                            "status": status,
                            "latency_ms": round(elapsed * 1000, 2),
                            "client": (scope.get("client") or ("", 0))[0],
                        }
                    )
                )

    async def _read_body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes | None:
        """The whole body, or None past the limit (checked on Content-Length first, then as it streams)."""
        limit = self.state.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """Hand the buffered body to the app once; later calls wait on the real channel (disconnects)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay
