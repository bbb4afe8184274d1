"""The HTTP server: FastAPI app, routes per family, one error mapping, the ASGI gate."""
