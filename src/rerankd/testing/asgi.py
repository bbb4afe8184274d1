"""The app in process: its lifespan run (models loaded, batchers started), an httpx client over ASGI.
For tests that need the real routes and engine but not a port; `servers` starts a real process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx


@asynccontextmanager
async def app_client(
    app: Any, *, wait: bool = True, timeout: float = 60, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and yield a client to it; `wait`: only once its models have loaded."""
    async with app.router.lifespan_context(app):
        if wait:
            await asyncio.wait_for(app.state.loading, timeout)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://rerankd") as client:
            yield client
