"""Shared route dependencies."""

from __future__ import annotations

from fastapi import Request

from rerankd.server.state import ServerState


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.rerankd
    return state


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))
